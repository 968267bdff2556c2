#include "train/train_memory.h"

#include <algorithm>

#include "data/dataset_size.h"
#include "data/datasets.h"
#include "util/memory.h"

namespace datanas {

uint64_t check_train_data_memory(const TrainOptions& o) {
  const auto train = probe_dataset(o.dataset, o.data_dir, true, o.limit);
  const auto test = probe_dataset(o.dataset, o.data_dir, false, o.test_limit);
  const uint64_t bytes = (train ? train->memory_bytes() : 0) + (test ? test->memory_bytes() : 0);
  const int64_t images = (train ? train->images : 0) + (test ? test->images : 0);
  require_memory("--dataset " + o.dataset + ": " + std::to_string(images) + " images", bytes,
                 "training and test splits", memory_budget(o.memory_limit_gib),
                 "lower --limit / --test-limit or raise --memory-limit (GiB)");
  return bytes;
}

void check_train_step_memory(const TrainOptions& o, const Genotype& genotype, int64_t parameters,
                             uint64_t data_bytes) {
  const DatasetInfo& info = dataset_info(o.dataset);
  size_t pairs = 0;
  for (const auto* cell : {&genotype.normal, &genotype.reduce}) {
    size_t count = 0;
    for (const GenotypeNode& node : *cell) count += node.size();
    pairs = std::max(pairs, count);
  }
  const double maps = pairs * 4.0 + 2.0 * genotype.normal.size();
  // The ImageNet network's stem divides the resolution by 8.
  const int64_t size = o.network == "imagenet" ? (info.size + 7) / 8 : info.size;
  const uint64_t activations =
      cell_network_activation_bytes(o.batch_size, size, o.init_channels, o.layers, maps);
  const uint64_t weights = 4ull * 4 * static_cast<uint64_t>(parameters);
  uint64_t needed = activations + weights;
  if (o.memory_limit_gib > 0) needed += data_bytes;
  require_memory("--batch-size " + std::to_string(o.batch_size) + " with this network", needed,
                 gib_text(activations) + " of feature maps for one batch, " + gib_text(weights) +
                     " of weights and optimiser state" +
                     (o.memory_limit_gib > 0 ? ", " + gib_text(data_bytes) + " of data" : ""),
                 memory_budget(o.memory_limit_gib),
                 "lower --batch-size, --init-channels or --layers, or raise --memory-limit (GiB)");
}

}  // namespace datanas
