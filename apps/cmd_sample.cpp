#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "sample/egs_statistics.h"

namespace datanas::cli {

Command add_sample(CLI::App& app) {
  auto probs = std::make_shared<std::vector<double>>();
  auto M = std::make_shared<int>(4);
  auto draws = std::make_shared<int64_t>(100000);
  auto seed = std::make_shared<uint64_t>(1);
  auto tau = std::make_shared<double>(1.0);
  auto as_json = std::make_shared<bool>(false);
  app.add_option("--probs", *probs, "probabilities of one decision, e.g. 0.5,0.3,0.2")
      ->required()
      ->delimiter(',');
  app.add_option("--M", *M, "EGS draws per code")->capture_default_str();
  app.add_option("--draws", *draws, "codes to draw")->capture_default_str();
  app.add_option("--seed", *seed, "random seed")->capture_default_str();
  app.add_option("--tau", *tau, "Gumbel-softmax temperature")->capture_default_str();
  app.add_flag("--json", *as_json, "print one JSON object");
  return [=]() {
    EgsStatistics stats = egs_statistics(*probs, *M, *draws, *seed, *tau);
    if (*as_json) {
      std::printf("%s\n",
                  nlohmann::json{{"marginal", stats.marginal}, {"support_size", stats.support_size}}
                      .dump()
                      .c_str());
      return 0;
    }
    double sum = 0;
    for (double p : *probs) sum += p;
    std::printf("entry  p       marginal  1-(1-p)^M\n");
    for (size_t k = 0; k < probs->size(); ++k) {
      const double p = (*probs)[k] / sum;
      std::printf("%5zu  %.4f  %.4f    %.4f\n", k, p, stats.marginal[k], 1 - std::pow(1 - p, *M));
    }
    std::printf("support size:");
    for (size_t s = 0; s < stats.support_size.size(); ++s)
      std::printf(" %zu:%.4f", s, stats.support_size[s]);
    std::printf("\n");
    return 0;
  };
}

}  // namespace datanas::cli
