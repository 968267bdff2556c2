// The backward of the fused ReLU -> depthwise -> pointwise -> BN block (dw_pw_bn.cpp), one
// sample at a time, part of the NHWC kernels (nhwc_kernels_generic.h). Everything between the
// block's input and its output lives in scratch: the padded input (made once; it serves the
// depthwise output made again and the depthwise weight gradient), the batch norm's input
// gradient, and the depthwise output's gradient, padded for the gather-form depthwise backward.
// The padded planes take pad_for_rows' layout (channel-blocked where the depthwise rows are).
#pragma once
#include <cstdint>

#include "kernels/nhwc_batch_norm_generic.h"
#include "kernels/nhwc_conv_backward_generic.h"
#include "kernels/nhwc_conv_generic.h"
#include "kernels/nhwc_kernels.h"
#include "kernels/nhwc_pointwise_generic.h"

namespace datanas {
namespace kernels {
namespace nhwc {
namespace {

// Scratch of dw_pw_backward: two padded planes, the flipped taps, the depthwise output u, the
// batch norm's input gradient and a row's sums of gx.
inline int64_t block_backward_scratch(const ConvGeometry& g, int64_t C, int64_t outputs) {
  return conv_scratch(g, C) + g.out_height * g.out_width * (C + outputs) + 2 * C;
}

template <typename T>
void dw_pw_backward(const DwPwGrads<T>& s, int64_t C, int64_t outputs, const ConvGeometry& g,
                    T* scratch) {
  const int64_t pixels = g.out_height * g.out_width;
  const int64_t pitch = padded(g).width * C, plane = padded(g).height * pitch;
  T* P = scratch;
  T* G = P + plane;
  T* flipped = G + plane;
  T* u = flipped + g.kernel * g.kernel * C;
  T* gz = u + pixels * C;
  const InputGradSums<T> gx_sums{s.x, s.x_mean, s.sum_gx, s.sum_gx_xc, gz + pixels * outputs};
  normalize_backward(s.z, s.gy, gz, outputs, 0, pixels, s.a, s.b, s.c0);
  pad_for_rows(s.x, P, C, g, /*relu=*/true, s.in_scale, s.in_offset);
  if (s.gw_pw) {
    for (int64_t oh = 0; oh < g.out_height; ++oh)
      conv_row_of(P, s.dw, u + oh * g.out_width * C, C, g, oh);
    pointwise_wgrad(u, gz, s.gw_pw, C, outputs, 0, pixels, /*relu_x=*/false);
  }
  if (!s.gx) return;
  if (!gathers(g)) {
    pointwise(gz, s.pw, u, outputs, C, 0, pixels, /*relu_x=*/false, static_cast<const T*>(nullptr));
    conv_backward_scatter(s.x, s.dw, u, s.gx, s.gw_dw, C, g, /*relu=*/true, scratch);
    if (s.x_mean)
      grad_moments(s.x, s.gx, C, 0, g.height * g.width, s.x_mean, s.sum_gx, s.sum_gx_xc);
    return;
  }
  // The gather form: u's gradient (u has the input's size) goes into G, laid out as P. Where
  // that is NHWC (one channel block is too) the pointwise conv writes it into G's inner part;
  // else into u's buffer, padded into G after.
  const bool in_place = !blocks_channels<T>(C, g) || C == Simd<T>::lanes;
  T* gu = in_place ? G + g.padding * pitch + g.padding * C : u;
  const int64_t gu_pitch = in_place ? pitch : g.width * C;
  if (in_place) zero_border(G, C, g);
  for (int64_t h = 0; h < g.height; ++h)
    pointwise(gz + h * g.width * outputs, s.pw, gu + h * gu_pitch, outputs, C, 0, g.width,
              /*relu_x=*/false, static_cast<const T*>(nullptr));
  if (s.gw_dw) tap_weight_grads(P, gu, gu_pitch, s.gw_dw, C, g);
  if (!in_place) pad_for_rows(gu, G, C, g, /*relu=*/false);
  gather_input_grads_where_positive(G, s.dw, s.gx, C, g, flipped, P, s.x_mean ? &gx_sums : nullptr);
}

}  // namespace
}  // namespace nhwc
}  // namespace kernels
}  // namespace datanas
