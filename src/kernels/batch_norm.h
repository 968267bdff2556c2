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

}  // namespace datanas
