// Native 3x3 pooling with padding 1 (DARTS' max_pool_3x3 and avg_pool_3x3) as autograd functions.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace datanas {

// x (N, C, H, W) float or double on the CPU; stride 1 or 2. Max pooling sends the gradient to
// the first maximum of a window (row-major), as LibTorch does; the average excludes padding
// (count_include_pad = false).
at::Tensor native_max_pool3x3(const at::Tensor& x, int64_t stride);
at::Tensor native_avg_pool3x3(const at::Tensor& x, int64_t stride);

}  // namespace datanas
