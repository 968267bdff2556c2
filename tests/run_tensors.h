// The tensors a run folder holds, for tests that compare runs weight by weight: a search
// checkpoint (rebuilt from the run's own config.json) and a training run's model.pt.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <string>

#include "data/datasets.h"
#include "search/run_files.h"
#include "search/search_options.h"
#include "search/search_state.h"
#include "train/model_file.h"

namespace datanas::testing {

using TensorMap = std::map<std::string, at::Tensor>;

inline void add_module_tensors(const torch::nn::Module& module, TensorMap& out) {
  for (const auto& item : module.named_parameters()) out["param " + item.key()] = item.value();
  for (const auto& item : module.named_buffers()) out["buffer " + item.key()] = item.value();
}

// Weights, BN statistics and alphas of `dir`/checkpoint.pt, plus its epochs_done.
inline TensorMap search_checkpoint_tensors(const std::filesystem::path& dir) {
  SearchOptions options = search_options_from_json(read_run_config(dir.string()), "config.json");
  const DatasetInfo& info = dataset_info(options.dataset);
  options.net.input_channels = info.channels;
  options.net.classes = info.classes;
  auto sampler = make_sampler(options.sampler, CellSpace{options.net.nodes, 8});
  SearchState state = make_search_state(options, *sampler, at::kCPU);
  load_search_checkpoint((dir / "checkpoint.pt").string(), state);
  TensorMap out;
  add_module_tensors(*state.model, out);
  out["alpha_normal"] = state.alpha_normal.detach();
  out["alpha_reduce"] = state.alpha_reduce.detach();
  out["epochs_done"] = at::tensor(int64_t{state.epochs_done});
  return out;
}

inline TensorMap model_file_tensors(const std::filesystem::path& model) {
  ModelFile file = load_model_file(model.string());
  TensorMap out;
  add_module_tensors(*file.network, out);
  return out;
}

// Same names, bit-identical values; `skip` names an entry left out of the comparison.
inline void expect_same_tensors(const TensorMap& a, const TensorMap& b, const std::string& what,
                                const std::string& skip = "") {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (const auto& [name, tensor] : a) {
    if (name == skip) continue;
    auto it = b.find(name);
    ASSERT_NE(it, b.end()) << what << ": " << name;
    EXPECT_TRUE(torch::equal(tensor, it->second)) << what << ": " << name;
  }
}

}  // namespace datanas::testing
