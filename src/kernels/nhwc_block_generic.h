// The fused ReLU -> depthwise -> pointwise block of the NHWC kernels (nhwc_kernels_generic.h),
// the forward of the sep/dil conv blocks (with autograd, dw_pw_bn.cpp, or without): each band of
// output rows of the depthwise conv lives only in scratch while the pointwise conv turns it into
// rows of z, and the batch-norm moments of z are gathered while those rows are still in L1.
// Compared with the separate kernels this saves writing and reading the depthwise output and one
// more read of z, and three parallel regions. Given the gradient of the block's output, it also
// gathers what <gradient, BN(z)> needs, and then z need not be written at all.
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

// Depthwise output rows go to the pointwise conv kBandRows at a time: its tiles take 6 pixels,
// and 3 rows of an even width are a multiple of 6 (rows of 8 pixels one at a time ended in a
// 2-pixel tile at half the FMA throughput).
constexpr int64_t kBandRows = 3;

// Scratch of dw_pw_forward: the padded sample, a band of depthwise output rows and of z.
inline int64_t block_scratch(const ConvGeometry& g, int64_t C, int64_t outputs) {
  const PaddedPlane pp = padded(g);
  return pp.height * pp.width * C + kBandRows * g.out_width * (C + outputs);
}

template <typename T>
void dw_pw_forward(const T* x, const T* dw, const T* pwt, T* z, int64_t C, int64_t outputs,
                   const ConvGeometry& g, const T* in_scale, const T* in_offset, T* scratch,
                   const BlockSums<T>& sums) {
  pad_for_rows(x, scratch, C, g, /*relu=*/true, in_scale, in_offset);
  T* dw_band = scratch + padded(g).height * padded(g).width * C;
  T* z_scratch = dw_band + kBandRows * g.out_width * C;
  const int64_t row_size = g.out_width * outputs;
  for (int64_t oh0 = 0; oh0 < g.out_height; oh0 += kBandRows) {
    const int64_t rows = g.out_height - oh0 < kBandRows ? g.out_height - oh0 : kBandRows;
    const int64_t pixels = rows * g.out_width;
    for (int64_t r = 0; r < rows; ++r)
      conv_row_of(scratch, dw, dw_band + r * g.out_width * C, C, g, oh0 + r);
    T* z_band = z ? z + oh0 * row_size : z_scratch;
    pointwise<T>(dw_band, pwt, z_band, C, outputs, 0, pixels, /*relu_x=*/false, nullptr);
    if (oh0 == 0)
      for (int64_t o = 0; o < outputs; ++o) sums.shift[o] = z_band[o];
    // Row by row: the partial sums in T then cover as few values as before the bands.
    for (int64_t r = 0; r < rows; ++r) {
      const T* z_row = z_band + r * row_size;
      add_row_moments(z_row, g.out_width, outputs, sums.shift, sums.sum, sums.sum_squares);
      if (sums.g)
        add_row_grad_moments(z_row, sums.g + (oh0 + r) * row_size, g.out_width, outputs, sums.shift,
                             sums.sum_g, sums.sum_gz);
    }
  }
}

}  // namespace
}  // namespace nhwc
}  // namespace kernels
}  // namespace datanas
