// Native pointwise (1x1, stride 1, no bias) convolution as an autograd function: the second
// half of DARTS' sep/dil convs.
#pragma once
#include <ATen/core/Tensor.h>

namespace datanas {

// x (N, Ci, H, W) float or double on the CPU, weight (Co, Ci, 1, 1). Differentiable in x and
// weight. Returns an (N, Co, H, W) tensor in x's layout (NCHW or channels-last).
at::Tensor native_pointwise_conv2d(const at::Tensor& x, const at::Tensor& weight);

}  // namespace datanas
