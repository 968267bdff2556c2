#include "search/search_memory.h"

#include <algorithm>

#include "data/dataset_size.h"
#include "data/datasets.h"
#include "util/memory.h"

namespace datanas {

uint64_t check_search_data_memory(const SearchOptions& o, const std::string& data_dir) {
  const auto size = probe_dataset(o.dataset, data_dir, /*train=*/true, o.limit);
  if (!size) return 0;
  const uint64_t bytes = size->memory_bytes();
  require_memory("--dataset " + o.dataset + ": " + std::to_string(size->images) + " images", bytes,
                 "data set", memory_budget(o.memory_limit_gib),
                 "lower --limit or raise --memory-limit (GiB)");
  return bytes;
}

void check_search_step_memory(const SearchOptions& o, int64_t parameters, uint64_t data_bytes) {
  const DatasetInfo& info = dataset_info(o.dataset);
  const int edges = o.net.nodes * (o.net.nodes + 3) / 2;
  const int ops = o.exec == "dense" ? 7 : std::min(7, std::max(1, o.sampler.M));
  // About four stored maps per op (conv, BN, ReLU outputs) plus the nodes' sums.
  const double maps = edges * ops * 4.0 + 2.0 * o.net.nodes;
  const uint64_t activations = cell_network_activation_bytes(
      o.batch_size, info.size, o.net.init_channels, o.net.layers, maps);
  const uint64_t weights = 4ull * 4 * static_cast<uint64_t>(parameters);
  MemoryBudget budget = memory_budget(o.memory_limit_gib);
  // MemAvailable already excludes the loaded data; an explicit limit has to hold it too.
  uint64_t needed = activations + weights;
  if (o.memory_limit_gib > 0) needed += data_bytes;
  require_memory("--batch-size " + std::to_string(o.batch_size) + " with this supernet", needed,
                 gib_text(activations) + " of feature maps for one batch, " + gib_text(weights) +
                     " of weights and optimiser state" +
                     (o.memory_limit_gib > 0 ? ", " + gib_text(data_bytes) + " of data" : ""),
                 budget,
                 "lower --batch-size, --init-channels or --layers, or raise --memory-limit (GiB)");
}

}  // namespace datanas
