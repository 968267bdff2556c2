// The passes of the native batch norm over the data, in either layout (NCHW planes or NHWC
// pixel chunks): moments, scaling, gradient moments and the normalisation's backward. Work is
// split into fixed planes or chunks whose partial sums are reduced in order, so the sums do not
// depend on the thread count. Used by the batch norm (batch_norm.cpp) and by the batch-norm half
// of the fused ops (fused_batch_norm.cpp).
#pragma once
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <vector>

#include "kernels/layout.h"

namespace datanas {
namespace kernels {

// Per-channel values in double, from per-plane pairs reduced over the batch.
struct ChannelSums {
  std::vector<double> first, second;
};

inline ChannelSums reduce_planes(const std::vector<double>& pairs, int64_t N, int64_t C) {
  ChannelSums out{std::vector<double>(C, 0.0), std::vector<double>(C, 0.0)};
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      out.first[c] += pairs[2 * (n * C + c)];
      out.second[c] += pairs[2 * (n * C + c) + 1];
    }
  }
  return out;
}

constexpr int64_t kPixelChunk = 1024;  // pixels per NHWC task

// Per-chunk pairs of C-vectors (first, second) reduced in chunk order.
inline ChannelSums reduce_chunks(const std::vector<double>& parts, int64_t tasks, int64_t C) {
  ChannelSums out{std::vector<double>(C, 0.0), std::vector<double>(C, 0.0)};
  for (int64_t t = 0; t < tasks; ++t) {
    for (int64_t c = 0; c < C; ++c) {
      out.first[c] += parts[(2 * t) * C + c];
      out.second[c] += parts[(2 * t + 1) * C + c];
    }
  }
  return out;
}

// Sums of (x - shift) and of its square, per channel.
template <typename T>
ChannelSums channel_moments(const at::Tensor& x, const std::vector<T>& shift) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const T* xp = x.data_ptr<T>();
  if (kernels::is_nhwc(kernels::layout_of(x))) {
    const auto& k = kernels::nhwc_table<T>();
    const int64_t tasks = (N * HW + kPixelChunk - 1) / kPixelChunk;
    std::vector<double> parts(2 * tasks * C, 0.0);
    kernels::for_each_pixel_chunk(N * HW, kPixelChunk, [&](int64_t t, int64_t b, int64_t e) {
      k.moments(xp, C, b, e, shift.data(), &parts[2 * t * C], &parts[(2 * t + 1) * C]);
    });
    return reduce_chunks(parts, tasks, C);
  }
  const auto& k = kernels::kernel_table<T>();
  std::vector<double> pairs(2 * N * C);
  kernels::for_each_plane<T>(N * C, HW, 0, [&](int64_t plane, T*) {
    k.moments(xp + plane * HW, HW, shift[plane % C], &pairs[2 * plane], &pairs[2 * plane + 1]);
  });
  return reduce_planes(pairs, N, C);
}

// y = x * scale[c] + offset[c].
template <typename T>
void apply_scale_shift(const at::Tensor& x, at::Tensor& y, const std::vector<T>& scale,
                       const std::vector<T>& offset) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  if (kernels::is_nhwc(kernels::layout_of(x))) {
    const auto& k = kernels::nhwc_table<T>();
    kernels::for_each_pixel_chunk(N * HW, kPixelChunk, [&](int64_t, int64_t b, int64_t e) {
      k.scale_shift(xp, yp, C, b, e, scale.data(), offset.data());
    });
    return;
  }
  const auto& k = kernels::kernel_table<T>();
  kernels::for_each_plane<T>(N * C, 2 * HW, 0, [&](int64_t plane, T*) {
    const int64_t c = plane % C;
    k.scale_shift(xp + plane * HW, yp + plane * HW, HW, scale[c], offset[c]);
  });
}

// Sums of gy and of gy * (x - mean), per channel.
template <typename T>
ChannelSums channel_grad_moments(const at::Tensor& x, const at::Tensor& gy,
                                 const std::vector<T>& mean) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const T* xp = x.data_ptr<T>();
  const T* gyp = gy.data_ptr<T>();
  if (kernels::is_nhwc(kernels::layout_of(x))) {
    const auto& k = kernels::nhwc_table<T>();
    const int64_t tasks = (N * HW + kPixelChunk - 1) / kPixelChunk;
    std::vector<double> parts(2 * tasks * C, 0.0);
    kernels::for_each_pixel_chunk(N * HW, kPixelChunk, [&](int64_t t, int64_t b, int64_t e) {
      k.grad_moments(xp, gyp, C, b, e, mean.data(), &parts[2 * t * C], &parts[(2 * t + 1) * C]);
    });
    return reduce_chunks(parts, tasks, C);
  }
  const auto& k = kernels::kernel_table<T>();
  std::vector<double> pairs(2 * N * C);
  kernels::for_each_plane<T>(N * C, 2 * HW, 0, [&](int64_t plane, T*) {
    k.grad_moments(xp + plane * HW, gyp + plane * HW, HW, mean[plane % C], &pairs[2 * plane],
                   &pairs[2 * plane + 1]);
  });
  return reduce_planes(pairs, N, C);
}

// gx = a[c] * gy + b[c] * x + c0[c].
template <typename T>
void apply_normalize_backward(const at::Tensor& x, const at::Tensor& gy, at::Tensor& gx,
                              const std::vector<T>& a, const std::vector<T>& b,
                              const std::vector<T>& c0) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const T* xp = x.data_ptr<T>();
  const T* gyp = gy.data_ptr<T>();
  T* gxp = gx.data_ptr<T>();
  if (kernels::is_nhwc(kernels::layout_of(x))) {
    const auto& k = kernels::nhwc_table<T>();
    kernels::for_each_pixel_chunk(N * HW, kPixelChunk, [&](int64_t, int64_t lo, int64_t hi) {
      k.normalize_backward(xp, gyp, gxp, C, lo, hi, a.data(), b.data(), c0.data());
    });
    return;
  }
  const auto& k = kernels::kernel_table<T>();
  kernels::for_each_plane<T>(N * C, 3 * HW, 0, [&](int64_t plane, T*) {
    const int64_t c = plane % C;
    k.normalize_backward(xp + plane * HW, gyp + plane * HW, gxp + plane * HW, HW, a[c], b[c],
                         c0[c]);
  });
}

}  // namespace kernels
}  // namespace datanas
