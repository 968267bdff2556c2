#include "nets/network_info.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "util/error.h"

namespace datanas {

nlohmann::json network_info(const Genotype& genotype, const NetworkOptions& options,
                            int64_t input_size) {
  if (input_size < 1) throw Error("input size must be at least 1");
  NetworkOptions with_head = options;
  with_head.auxiliary = true;
  Network network(genotype, with_head);
  network->eval();

  MacCounter counter;
  std::vector<int64_t> cell_macs;
  {
    at::NoGradGuard no_grad;
    at::Tensor zeros = at::zeros({1, options.input_channels, input_size, input_size});
    try {
      network->forward_counted(zeros, &counter, &cell_macs);
    } catch (const c10::Error& e) {
      throw Error("network cannot take " + std::to_string(input_size) + "x" +
                  std::to_string(input_size) + " inputs: " + e.what_without_backtrace());
    }
  }

  nlohmann::json cells = nlohmann::json::array();
  const auto& list = network->cells();
  for (size_t i = 0; i < list.size(); ++i) {
    cells.push_back({{"index", static_cast<int64_t>(i)},
                     {"reduction", list[i]->reduction()},
                     {"channels", list[i]->channels()},
                     {"output_channels", list[i]->output_channels()},
                     {"params", count_parameters(*list[i])},
                     {"macs", cell_macs[i]}});
  }
  nlohmann::json info;
  info["params"] = count_parameters_without_auxiliary(*network);
  info["params_auxiliary"] = count_parameters(*network);
  info["macs"] = counter.macs;
  info["input_size"] = input_size;
  info["cells"] = std::move(cells);
  return info;
}

}  // namespace datanas
