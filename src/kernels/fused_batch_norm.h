// The batch-norm half of the native ops that fuse an op with the training-mode batch norm after
// it (pointwise_conv_bn, pool_bn; float/double CPU tensors): the op gathers its output z's
// moments while z is in cache; these functions turn them into the normalised output, and the
// output's gradient into the map of z's gradient that the op's backward applies a piece at a
// time, in cache. The plain native batch norm (batch_norm.cpp) shares the backward map.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "kernels/batch_norm_math.h"

namespace torch {
namespace nn {
class BatchNorm2dImpl;
}  // namespace nn
namespace autograd {
struct AutogradContext;
}  // namespace autograd
}  // namespace torch

namespace datanas {
namespace kernels {

// The batch norm's parameters; each tensor may be undefined or empty (absent).
struct BatchNormArgs {
  at::Tensor weight, bias, running_mean, running_var;
  double momentum = 0.1, eps = 1e-5;
};

// bn's arguments for a training step: its tensors, eps and this step's momentum (next_momentum:
// the step is counted).
BatchNormArgs training_args(torch::nn::BatchNorm2dImpl& bn);

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

// Whether a plain output's batch norm is normalised in place and its output y kept for the
// backward instead of z: where it has no affine parameters (the supernet's ops'), y = (z - mean) *
// invstd gives z's gradient map as z does, and writing y into a tensor of its own would cost a
// pass more (its cache lines are read before they are overwritten) and the memory of both.
bool keeps_normalized_output(const BatchNormArgs& bn);

// The map of z's gradient in terms of that y (z's layout; either layout): with the gradient gy
// of y and M values per channel, gz = invstd (gy - sum gy / M - y sum gy y / M), a = invstd,
// b = -invstd sum gy y / M and c0 = -invstd sum gy / M applied to y in z's place.
NormalizeBackwardMap normalized_output_backward_map(const at::Tensor& y, const at::Tensor& gy,
                                                    const BatchMoments& moments);

// An op's output weighed in a supernet node's sum (nets/mixed_op.h): the op stands for the value
// w * bn(z), w = row[index], and gives the sum z and bn's map (2, C: scale[c], offset[c], in z's
// dtype) instead of bn(z): the normalising pass is the sum's own. The sum weighs the mapped z by
// the same w and passes back d loss / d value as z's gradient (weighted_sum.h); the op's
// backward applies w and gives row its gradient.
struct OutputWeight {
  at::Tensor row;  // absent: a plain output
  int64_t index = 0;
};
struct WeightedOutput {
  at::Tensor z, map;  // map undefined: z is the plain output
};

// Weight 1 (a row of one 1 that wants no gradient): the op gives z and its batch norm's map for
// a consumer that applies the map itself, a sep conv's second block (dw_pw_bn.h).
OutputWeight unit_output_weight(const at::Tensor& like);

// Throws an Error naming `what` unless weight is absent or a 1-D row with index inside it.
void check_output_weight(const OutputWeight& weight, const std::string& what);

// The outputs of a fused op's autograd function once the op made z and its batch mean and
// biased variance: weighted (ctx non-null and weight.row present) z and bn's map, the map marked
// non-differentiable; else the output, normalize_with_moments(z, ..., keep_z). Either way the
// running statistics are updated and `moments` receives what the backward needs.
std::vector<at::Tensor> batch_norm_outputs(torch::autograd::AutogradContext* ctx, at::Tensor& z,
                                           const at::Tensor& mean, const at::Tensor& var,
                                           const BatchNormArgs& bn, const OutputWeight& weight,
                                           bool keep_z, BatchMoments* moments);

// The backward map of those outputs from gy, the gradient of the output (unweighted) or of the
// value w * bn(z) (weight.row present, w = row[index]): then bn's map of gy scaled by w (it is
// linear in gy), bn's weight and bias gradients alike, and *w_grad = d loss / d w.
NormalizeBackwardMap output_backward_map(const at::Tensor& z, const at::Tensor& gy,
                                         const BatchMoments& moments, const at::Tensor& bn_weight,
                                         const at::Tensor& bn_bias, const OutputWeight& weight,
                                         double* w_grad);
// The same from the sums over gy that it takes (sum gy and sum gy (z - mean) per channel) and
// the count of values per channel.
NormalizeBackwardMap output_backward_map(const std::vector<double>& sum_g,
                                         const std::vector<double>& sum_g_centered, double count,
                                         const BatchMoments& moments, const at::Tensor& bn_weight,
                                         const at::Tensor& bn_bias, const OutputWeight& weight,
                                         double* w_grad);

// row's gradient (w_grad at index, zero elsewhere) where weighted and wanted, else undefined.
at::Tensor output_weight_grad(const OutputWeight& weight, bool wanted, double w_grad);

// The gradients of the batch norm's weight and bias (undefined where absent).
at::Tensor weight_grad_of(const NormalizeBackwardMap& map, const at::Tensor& weight);
at::Tensor bias_grad_of(const NormalizeBackwardMap& map, bool has_bias, at::ScalarType dtype);

}  // namespace kernels
}  // namespace datanas
