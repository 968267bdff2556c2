// The fused ReLU -> depthwise -> pointwise block of the NHWC kernels (nhwc_kernels_generic.h),
// the forward of the sep/dil conv blocks (with autograd, dw_pw_bn.cpp, or without): each output
// row of the depthwise conv lives only in scratch while the pointwise conv turns it into a row of
// z, and the batch-norm moments of z are gathered while that row is still in L1. Compared with
// the separate kernels this saves writing and reading the depthwise output and one more read of
// z, and three parallel regions. Given the gradient of the block's output, it also gathers what
// <gradient, BN(z)> needs, and then z need not be written at all.
#pragma once
#include <cstdint>

#include "kernels/nhwc_batch_norm_generic.h"
#include "kernels/nhwc_conv_generic.h"
#include "kernels/nhwc_kernels.h"
#include "kernels/nhwc_pointwise_generic.h"
#include "kernels/simd_generic.h"

namespace datanas {
namespace kernels {
namespace nhwc {
namespace {
using namespace simd;

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
    conv_row(scratch, dw, dw_row, C, g, oh);
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
