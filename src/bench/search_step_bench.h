// `datanas bench --what search-step`: the cost of one search iteration (architecture step +
// weight step) on the dense path (all ops, full autograd) and on the fast path, next to the
// oracle: one training step of the sampled architecture as a discrete network, the lower bound
// of a weight step.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "search/search_options.h"

namespace datanas {

struct SearchBenchConfig {
  std::string name;
  int64_t channels = 1, size = 28;  // input images: channels x size x size
  SupernetOptions net;
  int64_t batch_size = 64;
};

// "cifar" (C=16, 8 cells, batch 64, 3x32x32), "demo" (the `datanas run` search: C=8,
// 5 cells, batch 64, 1x28x28) and "tiny" (C=4, 3 cells, batch 8, 1x28x28: a smoke test).
const std::vector<SearchBenchConfig>& search_bench_configs();
const SearchBenchConfig& search_bench_config(const std::string& name);  // throws Error

struct SearchBenchOptions {
  std::vector<int> Ms = {1, 2, 4, 7};
  Granularity granularity = Granularity::kNode;
  std::string alphas_file;  // alphas.json of a search run; empty = the initial alphas
  int warmup = 1, repeats = 3;
  bool channels_last = true;
  bool with_dense = true;
  uint64_t seed = 1;
  KernelBackend kernels = KernelBackend::kNative;
};

// One JSON object per M. Keys: config, M, dense_ms, fast_ms, fast_arch_ms, fast_weight_ms,
// oracle_ms, speedup, overhead, distinct_ops, peak_rss_mb (and the settings measured).
// The dense path runs every op whatever the code is, so its time is measured once per config
// (after the fast path) and reported for each M. `on_row` gets the rows at the end.
void run_search_step_bench(const SearchBenchConfig& config, const SearchBenchOptions& options,
                           const std::function<void(const nlohmann::json&)>& on_row);

}  // namespace datanas
