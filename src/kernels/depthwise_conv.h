// Native depthwise convolution (groups = channels, no bias) as an autograd function: the
// depthwise half of DARTS' sep/dil convs, optionally with the ReLU before it fused in.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "kernels/plane_kernels.h"

namespace datanas {

struct DepthwiseConvOptions {
  int64_t stride = 1;
  int64_t padding = 0;
  int64_t dilation = 1;
  bool relu_input = false;  // conv(relu(x)), without materialising relu(x)
};

// x (N, C, H, W) float or double on the CPU, weight (C, 1, k, k) with k <= 7. Differentiable
// in x and weight. Returns an (N, C, Ho, Wo) tensor in x's layout (NCHW or channels-last).
// The geometry of a depthwise conv of x (N, C, H, W) with weight (C, 1, k, k); throws Error on
// shapes, dtypes or options the native kernels do not take.
kernels::ConvGeometry depthwise_geometry(const at::Tensor& x, const at::Tensor& weight,
                                         int64_t stride, int64_t padding, int64_t dilation);

at::Tensor native_depthwise_conv2d(const at::Tensor& x, const at::Tensor& weight,
                                   const DepthwiseConvOptions& options);

}  // namespace datanas
