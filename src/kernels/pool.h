// Native 3x3 pooling with padding 1 (DARTS' max_pool_3x3 and avg_pool_3x3) as autograd functions.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "kernels/plane_kernels.h"

namespace datanas {

// x (N, C, H, W) float or double on the CPU; stride 1 or 2. Max pooling sends the gradient to
// the first maximum of a window (row-major), as LibTorch does; the average excludes padding
// (count_include_pad = false).
at::Tensor native_max_pool3x3(const at::Tensor& x, int64_t stride);
at::Tensor native_avg_pool3x3(const at::Tensor& x, int64_t stride);

// The output size of a 3x3 pool with padding 1 on x (4-D) at `stride` (>= 1).
kernels::PoolGeometry pool3x3_geometry(const at::Tensor& x, int64_t stride);

}  // namespace datanas
