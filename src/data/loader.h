// Mini-batches from an ImageSet: normalisation, train/validation split, shuffling and
// augmentation. The order and augmentation of every batch derive from (seed, epoch, batch index)
// alone, so a resumed run sees exactly the data an uninterrupted one would.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "data/datasets.h"
#include "data/image_set.h"

namespace datanas {

struct Batch {
  at::Tensor images;  // float32, B x C x H x W, normalised
  at::Tensor labels;  // int64, B
};

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = true;
  bool augment = false;  // random crop with padding 4 + horizontal flip
  int64_t cutout = 0;    // side of the cutout square, 0 = off
  uint64_t seed = 0;
};

// First `round(count * train_portion)` indices go to the first list, the rest to the second.
std::pair<std::vector<int64_t>, std::vector<int64_t>> split_indices(int64_t count,
                                                                    double train_portion);

class ImageLoader {
 public:
  ImageLoader(const ImageSet& images, std::vector<int64_t> indices, const DatasetInfo& info,
              LoaderOptions options);
  int64_t size() const { return static_cast<int64_t>(indices_.size()); }
  int64_t batches_per_epoch() const;  // the last partial batch counts
  Batch batch(int64_t epoch, int64_t index) const;

 private:
  std::vector<int64_t> order_for_epoch(int64_t epoch) const;
  at::Tensor normalised_;  // the loader's images, normalised once
  at::Tensor labels_;
  std::vector<int64_t> indices_;
  LoaderOptions options_;
};

}  // namespace datanas
