// Native training-mode batch norm over (N, H, W) per channel, forward and backward in two passes
// each over the data (LibTorch's CPU version makes several more).
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/kernel_backend.h"

namespace torch {
namespace nn {
class BatchNorm2dImpl;
}  // namespace nn
}  // namespace torch

namespace datanas {

// Normalises x (N, C, H, W; float or double on the CPU) with its batch statistics, then applies
// weight and bias (either may be undefined: affine = false). Updates running_mean/running_var
// (when defined) as at::batch_norm does: biased mean, unbiased variance, factor `momentum`.
// Differentiable in x, weight and bias.
at::Tensor native_batch_norm_train(const at::Tensor& x, const at::Tensor& weight,
                                   const at::Tensor& bias, const at::Tensor& running_mean,
                                   const at::Tensor& running_var, double momentum, double eps);

// bn->forward(x), with the native kernel where `backend` allows it and bn uses batch statistics.
// Takes x by value: without autograd, an x no one else holds (a temporary or a moved-from
// local) is normalised in place and returned.
at::Tensor batch_norm_forward(torch::nn::BatchNorm2dImpl& bn, at::Tensor x, KernelBackend backend);

// The running-statistics factor of bn's next training step; counts the step as at::batch_norm
// does (momentum unset: a cumulative average).
double next_momentum(torch::nn::BatchNorm2dImpl& bn);

// Whether bn normalises with batch statistics (training, or no running statistics kept).
bool uses_batch_statistics(const torch::nn::BatchNorm2dImpl& bn);

// A batch norm as the per-channel map y = x * scale[c] + offset[c] (double, C values each).
struct ChannelAffine {
  at::Tensor scale, offset;
};

// bn's training-mode map for an input whose batch mean and biased variance (double, C) over
// `count` values per channel are already known; counts the step and updates bn's running
// statistics exactly as batch_norm_forward would.
ChannelAffine batch_norm_affine(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& mean,
                                const at::Tensor& var, int64_t count);

// The batch moments of a block's output z before its batch norm: mean and biased variance
// (double, C) over `count` values per channel. A measured block (an op an architecture step
// needs only <g, bn(z)> of, for the gradient g of bn(z)) never stores z and adds, per channel,
// the sums of g * (z - mean) and of g.
struct BlockMoments {
  at::Tensor mean, var;
  int64_t count = 0;
  at::Tensor g_z_centered, g_sum;  // measured blocks only
};

// <g, z * affine.scale[c] + affine.offset[c]> for a measured block.
double measured_dot(const BlockMoments& block, const ChannelAffine& affine);

// x * scale[c] + offset[c] written over x (native kernels, either layout); returns x.
at::Tensor apply_channel_affine(at::Tensor x, const ChannelAffine& affine);

}  // namespace datanas
