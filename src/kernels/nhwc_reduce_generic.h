// FactorizedReduce's convolutions, part of the NHWC kernels (nhwc_kernels_generic.h): two
// stride-2 1x1 convs of relu(x), one on the even pixel grid (2i, 2j) and one on the shifted grid
// (2i + 1, 2j + 1), written side by side into one output pixel. In NHWC a grid pixel's channels
// are contiguous, so both are pointwise convs over pixels two apart: nothing is padded, sliced,
// concatenated or copied first, and the ReLU is applied as the inputs are read.
#pragma once
#include <cstdint>

#include "kernels/nhwc_kernels.h"
#include "kernels/nhwc_pointwise_generic.h"

namespace datanas {
namespace kernels {
namespace nhwc {
namespace {

// Pixels of output row oh that the shifted grid covers: the last row and column of an odd-sized
// input fall on the zero padding.
inline int64_t shifted_columns(const ConvGeometry& g, int64_t oh) {
  return 2 * oh + 1 < g.height ? g.width / 2 : 0;
}

// Where row oh of each grid starts in x (H, W, inputs).
inline int64_t even_row(const ConvGeometry& g, int64_t oh, int64_t inputs) {
  return 2 * oh * g.width * inputs;
}
inline int64_t shifted_row(const ConvGeometry& g, int64_t oh, int64_t inputs) {
  return ((2 * oh + 1) * g.width + 1) * inputs;
}

template <typename T>
void reduce_forward(const T* x, const T* wt_even, const T* wt_odd, T* y, int64_t inputs,
                    int64_t outputs, int64_t even, const ConvGeometry& g) {
  const int64_t odd = outputs - even, step = 2 * inputs;
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    T* y_row = y + oh * g.out_width * outputs;
    pointwise_range<T, true, false>(x + even_row(g, oh, inputs), step, wt_even, y_row, outputs,
                                    inputs, even, 0, g.out_width, nullptr);
    const int64_t cols = shifted_columns(g, oh);
    if (cols > 0)
      pointwise_range<T, true, false>(x + shifted_row(g, oh, inputs), step, wt_odd, y_row + even,
                                      outputs, inputs, odd, 0, cols, nullptr);
    for (int64_t ow = cols; ow < g.out_width; ++ow)
      for (int64_t o = even; o < outputs; ++o) y_row[ow * outputs + o] = T(0);
  }
}

template <typename T>
void reduce_backward(const T* x, const T* w_even, const T* w_odd, const T* gy, T* gx, T* gw_even,
                     T* gw_odd, int64_t inputs, int64_t outputs, int64_t even,
                     const ConvGeometry& g) {
  const int64_t odd = outputs - even, step = 2 * inputs, Wo = g.out_width;
  if (gx) {
    // Half the pixels are on neither grid and get no gradient.
    for (int64_t e = 0; e < g.height * g.width * inputs; ++e) gx[e] = T(0);
    for (int64_t oh = 0; oh < g.out_height; ++oh) {
      const T* gy_row = gy + oh * Wo * outputs;
      const int64_t at_even = even_row(g, oh, inputs), cols = shifted_columns(g, oh);
      // Through the ReLU the gradient passes where x > 0: x is the gate, laid out like gx.
      pointwise_range<T, false, true>(gy_row, outputs, w_even, gx + at_even, step, even, inputs, 0,
                                      Wo, x + at_even);
      if (cols == 0) continue;
      const int64_t at_odd = shifted_row(g, oh, inputs);
      pointwise_range<T, false, true>(gy_row + even, outputs, w_odd, gx + at_odd, step, odd, inputs,
                                      0, cols, x + at_odd);
    }
  }
  const int64_t row = 2 * g.width * inputs, gy_row = Wo * outputs;
  if (gw_even)
    grid_wgrad<T, true>(x, gy, gw_even, inputs, even,
                        {g.out_height, Wo, row, step, gy_row, outputs});
  // Only floor(H / 2) x floor(W / 2) shifted pixels are inside x; the rest read zero padding.
  if (gw_odd && g.height / 2 > 0 && g.width / 2 > 0)
    grid_wgrad<T, true>(x + shifted_row(g, 0, inputs), gy + even, gw_odd, inputs, odd,
                        {g.height / 2, g.width / 2, row, step, gy_row, outputs});
}

}  // namespace
}  // namespace nhwc
}  // namespace kernels
}  // namespace datanas
