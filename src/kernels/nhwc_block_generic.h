// The fused ReLU -> depthwise -> pointwise block of the NHWC kernels (nhwc_kernels_generic.h),
// for forward passes without autograd: each output row of the depthwise conv lives only in
// scratch while the pointwise conv turns it into a row of z, and the batch-norm moments of z are
// gathered while that row is still in L1. Compared with the separate kernels this saves writing
// and reading the depthwise output and one more read of z, and three parallel regions. Given the
// gradient of the block's output, it also gathers what <gradient, BN(z)> needs, and then z need
// not be written at all.
#pragma once
#include <cstdint>

#include "kernels/nhwc_conv_generic.h"
#include "kernels/nhwc_kernels.h"
#include "kernels/nhwc_pointwise_generic.h"
#include "kernels/simd_generic.h"

namespace datanas {
namespace kernels {
namespace nhwc {
namespace {
using namespace simd;

// Adds, per channel, the sums of (z - shift) and of its square over the `pixels` pixels of z
// (pixels x C): partial sums in T over the pixels, then double accumulators.
template <typename T>
void add_row_moments(const T* z, int64_t pixels, int64_t C, const T* shift, double* sum,
                     double* sum_squares) {
  for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
    DATANAS_BLOCK_TYPES(blk);
    E s[K], q[K], sh[K];
    clear(s, K);
    clear(q, K);
    for (int v = 0; v < K; ++v) sh[v] = load<E>(shift + c0 + v * L);
    for (int64_t p = 0; p < pixels; ++p) {
      for (int v = 0; v < K; ++v) {
        const E d = load<E>(z + p * C + c0 + v * L) - sh[v];
        s[v] += d;
        q[v] += d * d;
      }
    }
    add_lanes<E, T>(s, K, sum + c0);
    add_lanes<E, T>(q, K, sum_squares + c0);
  });
}

// Adds, per channel, the sums of g and of g * (x - mean) over `pixels` pixels of x and g
// (pixels x C each).
template <typename T>
void add_row_grad_moments(const T* x, const T* g, int64_t pixels, int64_t C, const T* mean,
                          double* sum_g, double* sum_gx) {
  for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
    DATANAS_BLOCK_TYPES(blk);
    E s[K], q[K], m[K];
    clear(s, K);
    clear(q, K);
    for (int v = 0; v < K; ++v) m[v] = load<E>(mean + c0 + v * L);
    for (int64_t p = 0; p < pixels; ++p) {
      for (int v = 0; v < K; ++v) {
        const E gv = load<E>(g + p * C + c0 + v * L);
        s[v] += gv;
        q[v] += gv * (load<E>(x + p * C + c0 + v * L) - m[v]);
      }
    }
    add_lanes<E, T>(s, K, sum_g + c0);
    add_lanes<E, T>(q, K, sum_gx + c0);
  });
}

// Scratch of dw_pw_forward: the padded sample, one depthwise output row and one row of z.
inline int64_t block_scratch(const ConvGeometry& g, int64_t C, int64_t outputs) {
  const PaddedPlane pp = padded(g);
  return pp.height * pp.width * C + g.out_width * (C + outputs);
}

template <typename T>
void dw_pw_forward(const T* x, const T* dw, const T* pwt, T* z, int64_t C, int64_t outputs,
                   const ConvGeometry& g, const T* in_scale, const T* in_offset, T* scratch,
                   const BlockSums<T>& sums) {
  pad_sample(x, scratch, C, g, /*relu=*/true, in_scale, in_offset);
  T* dw_row = scratch + padded(g).height * padded(g).width * C;
  T* z_scratch = dw_row + g.out_width * C;
  const int64_t row_size = g.out_width * outputs;
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    int64_t ow = 0;
    for (; ow + 4 <= g.out_width; ow += 4) conv_outputs<T, 4>(scratch, dw, dw_row, C, g, oh, ow);
    for (; ow < g.out_width; ++ow) conv_outputs<T, 1>(scratch, dw, dw_row, C, g, oh, ow);
    T* z_row = z ? z + oh * row_size : z_scratch;
    pointwise<T>(dw_row, pwt, z_row, C, outputs, 0, g.out_width, /*relu_x=*/false, nullptr);
    if (oh == 0)
      for (int64_t o = 0; o < outputs; ++o) sums.shift[o] = z_row[o];
    add_row_moments(z_row, g.out_width, outputs, sums.shift, sums.sum, sums.sum_squares);
    if (sums.g)
      add_row_grad_moments(z_row, sums.g + oh * row_size, g.out_width, outputs, sums.shift,
                           sums.sum_g, sums.sum_gz);
  }
}

}  // namespace
}  // namespace nhwc
}  // namespace kernels
}  // namespace datanas
