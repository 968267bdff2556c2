// The batch-norm half of the native ops that fuse an op with the training-mode batch norm after
// it (pointwise_conv_bn, pool_bn; float/double CPU tensors): the op gathers its output z's
// moments while z is in cache; these functions turn them into the normalised output, and the
// output's gradient into the map of z's gradient that the op's backward applies a piece at a
// time, in cache. The plain native batch norm (batch_norm.cpp) shares the backward map.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

#include "kernels/batch_norm_math.h"

namespace datanas {
namespace kernels {

// The batch norm's parameters; each tensor may be undefined or empty (absent).
struct BatchNormArgs {
  at::Tensor weight, bias, running_mean, running_var;
  double momentum = 0.1, eps = 1e-5;
};

// Throws an Error naming `what` unless every present tensor of `bn` has `channels` values and a
// channel has more than one value (count) to normalise.
void check_batch_norm_args(const BatchNormArgs& bn, int64_t channels, int64_t count,
                           const std::string& what);

// y = the batch norm of z (N, C, H, W, either layout) given z's batch mean and biased variance
// (double, C); updates the running statistics. In place (y is z) unless `keep_z`. `moments`
// (may be null) receives the mean and invstd the backward needs.
at::Tensor normalize_with_moments(at::Tensor& z, const at::Tensor& mean, const at::Tensor& var,
                                  const BatchNormArgs& bn, bool keep_z, BatchMoments* moments);

// The map of z's gradient from the output's gradient gy (z's layout; either layout), with z's
// mean and invstd.
NormalizeBackwardMap batch_norm_backward_map(const at::Tensor& z, const at::Tensor& gy,
                                             const BatchMoments& moments, const at::Tensor& weight);

// The gradients of the batch norm's weight and bias (undefined where absent).
at::Tensor weight_grad_of(const NormalizeBackwardMap& map, const at::Tensor& weight);
at::Tensor bias_grad_of(const NormalizeBackwardMap& map, bool has_bias, at::ScalarType dtype);

}  // namespace kernels
}  // namespace datanas
