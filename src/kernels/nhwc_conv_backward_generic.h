// The NHWC depthwise convolution's backward, part of the NHWC kernels (nhwc_kernels_generic.h).
// Stride-1 "same" convolutions (every stride-1 op of the cell space) take the gather form: the
// input gradient is the forward convolution of the output gradient with the taps flipped, and
// each tap's weight gradient a dot product over the outputs, both with accumulators in
// registers. Other geometries scatter each output's gradient to the inputs it read.
#pragma once
#include <cstdint>

#include "kernels/nhwc_conv_generic.h"
#include "kernels/nhwc_kernels.h"
#include "kernels/simd_generic.h"

namespace datanas {
namespace kernels {
namespace nhwc {
namespace {
using namespace simd;

// Scatter form for outputs ow .. ow + PB - 1: each output's gradient goes to the padded inputs
// it read (G) and, with WGRAD, to the taps (gw, summed over the PB outputs in registers first).
template <typename T, int PB, bool WGRAD>
inline void conv_output_grads(const T* P, const T* w, const T* gy_row, T* G, T* gw, int64_t C,
                              const ConvGeometry& g, int64_t oh, int64_t ow) {
  const int64_t k = g.kernel, d = g.dilation, s = g.stride, pitch = padded(g).width * C;
  for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
    DATANAS_BLOCK_TYPES(blk);
    E up[PB][K];
    for (int q = 0; q < PB; ++q)
      for (int v = 0; v < K; ++v) up[q][v] = load<E>(gy_row + (ow + q) * C + c0 + v * L);
    for (int64_t i = 0; i < k; ++i) {
      const int64_t row = (oh * s + i * d) * pitch + ow * s * C + c0;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t tap = (i * k + j) * C + c0;
        E wv[K], tap_grad[K];
        clear(tap_grad, K);
        for (int v = 0; v < K; ++v) wv[v] = load<E>(w + tap + v * L);
        for (int q = 0; q < PB; ++q) {
          const int64_t at = row + (q * s + j * d) * C;
          for (int v = 0; v < K; ++v) {
            if (WGRAD) tap_grad[v] += up[q][v] * load<E>(P + at + v * L);
            store(G + at + v * L, load<E>(G + at + v * L) + wv[v] * up[q][v]);
          }
        }
        if (WGRAD)
          for (int v = 0; v < K; ++v)
            store(gw + tap + v * L, load<E>(gw + tap + v * L) + tap_grad[v]);
      }
    }
  });
}

template <typename T, bool WGRAD>
inline void conv_row_grads(const T* P, const T* w, const T* gy_row, T* G, T* gw, int64_t C,
                           const ConvGeometry& g, int64_t oh) {
  int64_t ow = 0;
  for (; ow + 4 <= g.out_width; ow += 4)
    conv_output_grads<T, 4, WGRAD>(P, w, gy_row, G, gw, C, g, oh, ow);
  for (; ow < g.out_width; ++ow) conv_output_grads<T, 1, WGRAD>(P, w, gy_row, G, gw, C, g, oh, ow);
}

template <typename T>
void conv_backward_scatter(const T* x, const T* w, const T* gy, T* gx, T* gw, int64_t C,
                           const ConvGeometry& g, bool relu, T* scratch) {
  const PaddedPlane pp = padded(g);
  T* P = scratch;
  T* G = scratch + pp.height * pp.width * C;
  // Without a weight gradient (gw null: an architecture step) the padded input is not read.
  if (gw) pad_sample(x, P, C, g, relu);
  for (int64_t e = 0; e < pp.height * pp.width * C; ++e) G[e] = T(0);
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    const T* gy_row = gy + oh * g.out_width * C;
    if (gw) {
      conv_row_grads<T, true>(P, w, gy_row, G, gw, C, g, oh);
    } else {
      conv_row_grads<T, false>(P, w, gy_row, G, gw, C, g, oh);
    }
  }
  // The inner part of G is the input gradient; the ReLU passes it where x > 0.
  const int64_t inner = g.width * C;
  for (int64_t h = 0; h < g.height; ++h) {
    const T* src = G + (h + g.padding) * pp.width * C + g.padding * C;
    const T* xr = x + h * inner;
    T* dst = gx + h * inner;
    if (relu) {
      for (int64_t e = 0; e < inner; ++e) dst[e] = xr[e] > T(0) ? src[e] : T(0);
    } else {
      for (int64_t e = 0; e < inner; ++e) dst[e] = src[e];
    }
  }
}

// Stride 1 with padding (k - 1) d / 2: the output has the input's size, and the input gradient
// is a convolution of the output gradient with the same padding.
inline bool gathers(const ConvGeometry& g) {
  return g.stride == 1 && 2 * g.padding == (g.kernel - 1) * g.dilation;
}

// gw[tap] += sum over outputs of gy * P at the tap's offset (P: the padded input), four outputs
// at a time in separate accumulators so the FMAs do not wait on one another.
template <typename T>
void tap_weight_grads(const T* P, const T* gy, T* gw, int64_t C, const ConvGeometry& g) {
  const int64_t k = g.kernel, d = g.dilation, pitch = padded(g).width * C, W = g.out_width;
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    const T* gy_row = gy + oh * W * C;
    for (int64_t i = 0; i < k; ++i) {
      for (int64_t j = 0; j < k; ++j) {
        const T* p_row = P + (oh + i * d) * pitch + j * d * C;
        T* tap = gw + (i * k + j) * C;
        for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
          DATANAS_BLOCK_TYPES(blk);
          E acc[4][K];
          clear(&acc[0][0], 4 * K);
          int64_t ow = 0;
          for (; ow + 4 <= W; ow += 4)
            for (int q = 0; q < 4; ++q)
              for (int v = 0; v < K; ++v)
                acc[q][v] += load<E>(gy_row + (ow + q) * C + c0 + v * L) *
                             load<E>(p_row + (ow + q) * C + c0 + v * L);
          for (; ow < W; ++ow)
            for (int v = 0; v < K; ++v)
              acc[0][v] +=
                  load<E>(gy_row + ow * C + c0 + v * L) * load<E>(p_row + ow * C + c0 + v * L);
          for (int v = 0; v < K; ++v)
            store(tap + c0 + v * L,
                  load<E>(tap + c0 + v * L) + ((acc[0][v] + acc[1][v]) + (acc[2][v] + acc[3][v])));
        });
      }
    }
  }
}

template <typename T>
void conv_backward_gather(const T* x, const T* w, const T* gy, T* gx, T* gw, int64_t C,
                          const ConvGeometry& g, bool relu, T* scratch) {
  const PaddedPlane pp = padded(g);
  const int64_t taps = g.kernel * g.kernel;
  T* P = scratch;
  T* G = scratch + pp.height * pp.width * C;
  T* flipped = G + pp.height * pp.width * C;
  if (gw) {
    pad_sample(x, P, C, g, relu);
    tap_weight_grads(P, gy, gw, C, g);
  }
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t c = 0; c < C; ++c) flipped[(taps - 1 - t) * C + c] = w[t * C + c];
  // The output gradient has the input's size and padding here, so G is laid out like P.
  pad_sample(gy, G, C, g, /*relu=*/false);
  for (int64_t h = 0; h < g.height; ++h) {
    T* gx_row = gx + h * g.width * C;
    int64_t ow = 0;
    for (; ow + 4 <= g.width; ow += 4) conv_outputs<T, 4>(G, flipped, gx_row, C, g, h, ow);
    for (; ow < g.width; ++ow) conv_outputs<T, 1>(G, flipped, gx_row, C, g, h, ow);
    if (relu) {
      const T* x_row = x + h * g.width * C;
      for (int64_t e = 0; e < g.width * C; ++e) gx_row[e] = x_row[e] > T(0) ? gx_row[e] : T(0);
    }
  }
}

template <typename T>
void conv_backward(const T* x, const T* w, const T* gy, T* gx, T* gw, int64_t C,
                   const ConvGeometry& g, bool relu, T* scratch) {
  if (gathers(g)) {
    conv_backward_gather(x, w, gy, gx, gw, C, g, relu, scratch);
  } else {
    conv_backward_scatter(x, w, gy, gx, gw, C, g, relu, scratch);
  }
}

}  // namespace
}  // namespace nhwc
}  // namespace kernels
}  // namespace datanas
