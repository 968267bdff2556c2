// The search/validation gap (paper Table 8): on the validation half, accuracy of the supernet
// with freshly sampled architectures vs the same weights with the derived architecture, raw
// (BN running statistics as they are) and after recalibrating BN on a few training batches.
#pragma once
#include <functional>
#include <utility>

#include "data/loader.h"
#include "nets/supernet.h"
#include "sample/sampler.h"
#include "space/genotype.h"

namespace datanas {

struct GapResult {
  double search_acc = 0, derived_acc = 0, derived_acc_raw = 0;
  double gap() const { return search_acc - derived_acc; }
};

struct GapOptions {
  int64_t batches = 0;                // validation batches (0 = all)
  int64_t recalibration_batches = 8;  // training batches for BN recalibration
  int64_t epoch = 0;                  // selects the data order and the sampling noise
  uint64_t seed = 0;
};

// Accuracy (0..1) of `model` in eval mode over `batches` batches of `loader` with the weights
// drawn by `weights_for_batch(batch index)`.
double evaluate_accuracy(Supernet& model, const ImageLoader& loader, int64_t epoch,
                         int64_t batches,
                         const std::function<std::pair<CellWeights, CellWeights>()>& weights,
                         const at::Device& device);

GapResult measure_gap(Supernet& model, const Sampler& sampler, const at::Tensor& alpha_normal,
                      const at::Tensor& alpha_reduce, const Genotype& derived,
                      const ImageLoader& validation, const ImageLoader& training,
                      const GapOptions& options, const at::Device& device);

}  // namespace datanas
