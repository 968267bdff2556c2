// Native pointwise (1x1, stride 1, no bias) convolution as an autograd function: the second
// half of DARTS' sep/dil convs.
#pragma once
#include <ATen/core/Tensor.h>

namespace datanas {

// x (N, Ci, H, W) float or double on the CPU, weight (Co, Ci, 1, 1). Differentiable in x and
// weight. Returns an (N, Co, H, W) tensor in x's layout (NCHW or channels-last). relu_input:
// the conv of relu(x); in channels-last the ReLU is fused (relu(x) is never stored).
at::Tensor native_pointwise_conv2d(const at::Tensor& x, const at::Tensor& weight,
                                   bool relu_input = false);

}  // namespace datanas
