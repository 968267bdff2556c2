#include "data/loader.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>

#include "util/error.h"

namespace datanas {
namespace {

constexpr int64_t kCropPadding = 4;
constexpr uint64_t kOrderStream = 0x6f72646572;  // separates the shuffle and augmentation
constexpr uint64_t kAugmentStream = 0x6175676d;  // random streams of one seed

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t mix(uint64_t a, uint64_t b) { return splitmix64(splitmix64(a) + b); }

// Uniform in [0, n). Written out (rather than std::uniform_int_distribution or std::shuffle,
// whose algorithms are up to the library) so orders match across standard libraries.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  const uint64_t limit = max - max % n;
  uint64_t x;
  do x = rng();
  while (x >= limit);
  return x % n;
}

int64_t uniform_between(std::mt19937_64& rng, int64_t low, int64_t high) {  // inclusive
  return low + static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(high - low + 1)));
}

// Random crop from a zero-padded image (0 is the mean colour after normalisation), horizontal
// flip and cutout, drawn per image in batch order from one generator.
at::Tensor augment(const at::Tensor& images, std::mt19937_64& rng, bool crop_flip, int64_t cutout) {
  const at::Tensor in = images.contiguous();
  const int64_t batch = in.size(0), channels = in.size(1), height = in.size(2), width = in.size(3);
  at::Tensor out = crop_flip ? torch::zeros_like(in) : in.clone();
  const float* src = in.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t plane = height * width;
  for (int64_t b = 0; b < batch; ++b) {
    float* image = dst + b * channels * plane;
    if (crop_flip) {
      const int64_t dy = uniform_between(rng, -kCropPadding, kCropPadding);
      const int64_t dx = uniform_between(rng, -kCropPadding, kCropPadding);
      const bool flip = uniform_below(rng, 2) == 1;
      for (int64_t c = 0; c < channels; ++c) {
        const float* from = src + (b * channels + c) * plane;
        float* to = image + c * plane;
        for (int64_t y = 0; y < height; ++y) {
          const int64_t sy = y + dy;
          if (sy < 0 || sy >= height) continue;
          for (int64_t x = 0; x < width; ++x) {
            const int64_t sx = (flip ? width - 1 - x : x) + dx;
            if (sx >= 0 && sx < width) to[y * width + x] = from[sy * width + sx];
          }
        }
      }
    }
    if (cutout > 0) {
      const int64_t cy = uniform_between(rng, 0, height - 1);
      const int64_t cx = uniform_between(rng, 0, width - 1);
      const int64_t y0 = std::max<int64_t>(0, cy - cutout / 2);
      const int64_t y1 = std::min(height, cy - cutout / 2 + cutout);
      const int64_t x0 = std::max<int64_t>(0, cx - cutout / 2);
      const int64_t x1 = std::min(width, cx - cutout / 2 + cutout);
      for (int64_t c = 0; c < channels; ++c) {
        for (int64_t y = y0; y < y1; ++y) {
          std::fill(image + c * plane + y * width + x0, image + c * plane + y * width + x1, 0.0f);
        }
      }
    }
  }
  return out;
}

}  // namespace

std::pair<std::vector<int64_t>, std::vector<int64_t>> split_indices(int64_t count,
                                                                    double train_portion) {
  if (count < 0) throw Error("cannot split " + std::to_string(count) + " images");
  if (!(train_portion >= 0.0 && train_portion <= 1.0)) {
    throw Error("train portion " + std::to_string(train_portion) + " is outside [0, 1]");
  }
  const int64_t first = std::llround(static_cast<double>(count) * train_portion);
  std::pair<std::vector<int64_t>, std::vector<int64_t>> result;
  for (int64_t i = 0; i < count; ++i) (i < first ? result.first : result.second).push_back(i);
  return result;
}

ImageLoader::ImageLoader(const ImageSet& images, std::vector<int64_t> indices,
                         const DatasetInfo& info, LoaderOptions options)
    : indices_(std::move(indices)), options_(options) {
  if (options_.batch_size <= 0) {
    throw Error("batch size must be positive, got " + std::to_string(options_.batch_size));
  }
  if (options_.cutout < 0) {
    throw Error("cutout must be 0 (off) or positive, got " + std::to_string(options_.cutout));
  }
  if (indices_.empty()) throw Error(info.name + ": no images selected for the loader");
  const int64_t c = images.channels, h = images.height, w = images.width;
  if (c != info.channels || static_cast<int64_t>(info.mean.size()) != c ||
      static_cast<int64_t>(info.stddev.size()) != c) {
    throw Error(info.name + ": images have " + std::to_string(c) + " channels, expected " +
                std::to_string(info.channels));
  }
  if (images.pixels.size() != static_cast<size_t>(images.count * c * h * w) ||
      images.labels.size() != static_cast<size_t>(images.count)) {
    throw Error(info.name + ": image set sizes disagree with its count " +
                std::to_string(images.count));
  }
  for (int64_t index : indices_) {
    if (index < 0 || index >= images.count) {
      throw Error(info.name + ": image index " + std::to_string(index) + " is outside [0, " +
                  std::to_string(images.count) + ")");
    }
  }
  // Only this loader's images are normalised and kept (the train and validation halves of a
  // search share one ImageSet); from here on indices_ are positions into them.
  const at::Tensor rows = torch::from_blob(indices_.data(), {size()}, torch::kLong);
  auto* pixels = const_cast<uint8_t*>(images.pixels.data());
  const at::Tensor mean = torch::tensor(info.mean).view({1, c, 1, 1});
  const at::Tensor stddev = torch::tensor(info.stddev).view({1, c, 1, 1});
  normalised_ = torch::from_blob(pixels, {images.count, c, h, w}, torch::kUInt8)
                    .index_select(0, rows)
                    .to(torch::kFloat)
                    .div_(255.0)
                    .sub_(mean)
                    .div_(stddev);
  auto* labels = const_cast<int64_t*>(images.labels.data());
  labels_ = torch::from_blob(labels, {images.count}, torch::kLong).index_select(0, rows);
  std::iota(indices_.begin(), indices_.end(), 0);
}

int64_t ImageLoader::batches_per_epoch() const {
  return (size() + options_.batch_size - 1) / options_.batch_size;
}

// Recomputed for every batch (N generator draws) so that batch() keeps no state.
std::vector<int64_t> ImageLoader::order_for_epoch(int64_t epoch) const {
  std::vector<int64_t> order = indices_;
  if (!options_.shuffle) return order;
  std::mt19937_64 rng(mix(mix(options_.seed, kOrderStream), static_cast<uint64_t>(epoch)));
  for (size_t i = order.size() - 1; i > 0; --i) {
    std::swap(order[i], order[uniform_below(rng, i + 1)]);
  }
  return order;
}

Batch ImageLoader::batch(int64_t epoch, int64_t index) const {
  if (epoch < 0) throw Error("epoch must be non-negative, got " + std::to_string(epoch));
  const int64_t batches = batches_per_epoch();
  if (index < 0 || index >= batches) {
    throw Error("batch index " + std::to_string(index) + " is outside [0, " +
                std::to_string(batches) + ")");
  }
  const std::vector<int64_t> order = order_for_epoch(epoch);
  const int64_t start = index * options_.batch_size;
  const int64_t end = std::min(start + options_.batch_size, size());
  std::vector<int64_t> picked(order.begin() + start, order.begin() + end);
  const at::Tensor rows = torch::from_blob(picked.data(), {end - start}, torch::kLong);
  Batch result{normalised_.index_select(0, rows), labels_.index_select(0, rows)};
  if (options_.augment || options_.cutout > 0) {
    std::mt19937_64 rng(mix(mix(mix(options_.seed, kAugmentStream), static_cast<uint64_t>(epoch)),
                            static_cast<uint64_t>(index)));
    result.images = augment(result.images, rng, options_.augment, options_.cutout);
  }
  return result;
}

}  // namespace datanas
