// The NHWC depthwise convolution's backward, part of the NHWC kernels (nhwc_kernels_generic.h).
// Stride-1 "same" convolutions (every stride-1 op of the cell space) take the gather form: the
// input gradient is the forward convolution of the output gradient with the taps flipped, and
// each tap's weight gradient a dot product over the outputs, both with accumulators in
// registers. Other geometries scatter each output's gradient to the inputs it read.
#pragma once
#include <cstdint>

#include "kernels/nhwc_batch_norm_generic.h"
#include "kernels/nhwc_conv_generic.h"
#include "kernels/nhwc_kernels.h"
#include "kernels/simd_generic.h"

namespace datanas {
namespace kernels {
namespace nhwc {
namespace {
using namespace simd;

// dst[e] = src[e] where x[e] > 0, else 0, for n values: a gradient through the ReLU of x (a NaN x
// passes nothing). dst may be src.
template <typename T>
inline void pass_where_positive(const T* x, const T* src, T* dst, int64_t n) {
  for (int64_t e = 0; e < n; ++e) dst[e] = x[e] > T(0) ? src[e] : T(0);
}

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
      pass_where_positive(xr, src, dst, inner);
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

// gw[taps (i, j0) .. (i, j0 + KT - 1)] += the sum over output row oh of gy * P (the padded
// input) at each tap's offset: one load of gy serves the KT taps of a row, each tap with its own
// accumulators (a load of gy per tap made this half as fast).
template <typename T, int KT>
inline void tap_run_grads(const T* P, const T* gy_row, T* gw, int64_t C, const ConvGeometry& g,
                          int64_t oh, int64_t i, int64_t j0) {
  const int64_t d = g.dilation, pitch = padded(g).width * C;
  const T* p_row = P + (oh + i * d) * pitch + j0 * d * C;
  for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
    DATANAS_BLOCK_TYPES(blk);
    E acc[KT][K];
    clear(&acc[0][0], KT * K);
    for (int64_t ow = 0; ow < g.out_width; ++ow) {
      E up[K];
      for (int v = 0; v < K; ++v) up[v] = load<E>(gy_row + ow * C + c0 + v * L);
      for (int j = 0; j < KT; ++j)
        for (int v = 0; v < K; ++v)
          acc[j][v] += up[v] * load<E>(p_row + (ow + j * d) * C + c0 + v * L);
    }
    for (int j = 0; j < KT; ++j) {
      T* tap = gw + (i * g.kernel + j0 + j) * C + c0;
      for (int v = 0; v < K; ++v) store(tap + v * L, load<E>(tap + v * L) + acc[j][v]);
    }
  });
}

// The sums over one output row of gy * the inputs at the KS offsets of ROWS tap rows (stride 1,
// dilation D), PB outputs at a time: each input is loaded once for every (output, tap) pair that
// reads it, where tap_run_grads loads one per multiply-add, and each gy load serves all the rows'
// taps. Tap row r's input t is at x + r * row_step + t * step, output q's gradient at
// gy + q * gy_step. Every tap sums the outputs in order, whatever ROWS. Always inlined, so the
// channel-blocked plane's steps are constants in the addresses (as in slide_taps).
template <typename E, typename T, int KS, int D, int PB, int ROWS = 1>
__attribute__((always_inline)) inline void slide_tap_grads(const T* x, int64_t row_step,
                                                           int64_t step, const T* gy,
                                                           int64_t gy_step, int64_t width,
                                                           E (&acc)[ROWS][KS]) {
  constexpr int kInputs = PB + (KS - 1) * D;
  clear(&acc[0][0], ROWS * KS);
  int64_t ow = 0;
  for (; ow + PB <= width; ow += PB) {
    E up[PB];
    for (int q = 0; q < PB; ++q) up[q] = load<E>(gy + (ow + q) * gy_step);
    for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 32
      for (int t = 0; t < kInputs; ++t) {
        E xv = load<E>(x + r * row_step + (ow + t) * step);
        hold_in_register(xv);
#pragma GCC unroll 8
        for (int j = 0; j < KS; ++j) {
          const int q = t - j * D;
          if (q >= 0 && q < PB) acc[r][j] += up[q] * xv;
        }
      }
    }
  }
  for (; ow < width; ++ow) {
    const E up = load<E>(gy + ow * gy_step);
    for (int r = 0; r < ROWS; ++r)
      for (int j = 0; j < KS; ++j)
        acc[r][j] += up * load<E>(x + r * row_step + (ow + j * D) * step);
  }
}

// gw[taps (i, 0) .. (i, KS - 1)] += the sums over output row oh of the NHWC padded sample P.
template <typename T, int KS, int D, int PB>
inline void tap_row_grads_sliding(const T* P, const T* gy_row, T* gw, int64_t C,
                                  const ConvGeometry& g, int64_t oh, int64_t i) {
  const T* p_row = P + (oh + i * D) * padded(g).width * C;
  for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
    DATANAS_BLOCK_TYPES(blk);
    for (int v = 0; v < K; ++v) {
      const int64_t c = c0 + v * L;
      E acc[1][KS];
      slide_tap_grads<E, T, KS, D, PB>(p_row + c, 0, C, gy_row + c, C, g.out_width, acc);
      for (int j = 0; j < KS; ++j) {
        T* tap = gw + (i * KS + j) * C + c;
        store(tap, load<E>(tap) + acc[0][j]);
      }
    }
  });
}

// tap_row_grads_sliding for tap rows i .. i + ROWS - 1 on the channel-blocked padded sample Pb
// (pad_sample_blocked).
template <typename T, int KS, int D, int PB, int ROWS>
inline void tap_row_grads_blocked(const T* Pb, const T* gy_row, T* gw, int64_t C,
                                  const ConvGeometry& g, int64_t oh, int64_t i) {
  using V = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::lanes;
  const int64_t pitch = padded(g).width * L, plane = padded(g).height * pitch;
  for (int64_t b = 0; b < C / L; ++b) {
    V acc[ROWS][KS];
    slide_tap_grads<V, T, KS, D, PB, ROWS>(Pb + b * plane + (oh + i * D) * pitch, D * pitch, L,
                                           gy_row + b * L, C, g.out_width, acc);
    for (int r = 0; r < ROWS; ++r)
      for (int j = 0; j < KS; ++j) {
        T* tap = gw + ((i + r) * KS + j) * C + b * L;
        store(tap, load<V>(tap) + acc[r][j]);
      }
  }
}

template <typename T, int KS, int D>
inline void tap_grads_of_row(const T* P, const T* gy_row, T* gw, int64_t C, const ConvGeometry& g,
                             int64_t oh) {
  constexpr int PB = 8;
  if (blocks_channels<T>(C, g)) {
    // KS accumulators are KS chains of dependent multiply-adds, too few to keep the FMA units
    // busy; AVX-512's 32 registers take a 3x3 conv's three tap rows at once (9 chains: 1.2-1.4x
    // faster at dilation 1, measured; at dilation 2 it was not faster).
    if constexpr (kVectorBytes == 64 && KS == 3 && D == 1) {
      tap_row_grads_blocked<T, KS, D, PB, KS>(P, gy_row, gw, C, g, oh, 0);
    } else {
      for (int64_t i = 0; i < KS; ++i)
        tap_row_grads_blocked<T, KS, D, PB, 1>(P, gy_row, gw, C, g, oh, i);
    }
    return;
  }
  for (int64_t i = 0; i < KS; ++i) tap_row_grads_sliding<T, KS, D, PB>(P, gy_row, gw, C, g, oh, i);
}

// gw += the taps' gradients from P (made by pad_for_rows) and gy, whose row oh starts at
// gy + oh * gy_pitch (NHWC).
template <typename T>
void tap_weight_grads(const T* P, const T* gy, int64_t gy_pitch, T* gw, int64_t C,
                      const ConvGeometry& g) {
  const int64_t k = g.kernel, d = g.dilation;
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    const T* gy_row = gy + oh * gy_pitch;
    if (k == 3 && d == 1) {
      tap_grads_of_row<T, 3, 1>(P, gy_row, gw, C, g, oh);
    } else if (k == 3 && d == 2) {
      tap_grads_of_row<T, 3, 2>(P, gy_row, gw, C, g, oh);
    } else if (k == 5 && d == 1) {
      tap_grads_of_row<T, 5, 1>(P, gy_row, gw, C, g, oh);
    } else if (k == 5 && d == 2) {
      tap_grads_of_row<T, 5, 2>(P, gy_row, gw, C, g, oh);
    } else {
      for (int64_t i = 0; i < k; ++i) {
        if (k == 3) {
          tap_run_grads<T, 3>(P, gy_row, gw, C, g, oh, i, 0);
        } else if (k == 5) {
          tap_run_grads<T, 5>(P, gy_row, gw, C, g, oh, i, 0);
        } else {
          for (int64_t j = 0; j < k; ++j) tap_run_grads<T, 1>(P, gy_row, gw, C, g, oh, i, j);
        }
      }
    }
  }
}

// The taps of w (k*k*C) in reverse order: the gather form's input gradient is the convolution
// of the padded output gradient with them.
template <typename T>
void flip_taps(const T* w, T* flipped, int64_t C, const ConvGeometry& g) {
  const int64_t taps = g.kernel * g.kernel;
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t c = 0; c < C; ++c) flipped[(taps - 1 - t) * C + c] = w[t * C + c];
}

// The gather form's input gradient from the padded output gradient G (made by pad_for_rows, or
// in the same layout): the convolution of G with the taps flipped (into `flipped`, k*k*C), each
// row then given to keep(h, gx_row), which applies the ReLU's mask.
template <typename T, typename Keep>
void gather_input_grads(const T* G, const T* w, T* gx, int64_t C, const ConvGeometry& g, T* flipped,
                        const Keep& keep) {
  flip_taps(w, flipped, C, g);
  for (int64_t h = 0; h < g.height; ++h) {
    T* gx_row = gx + h * g.width * C;
    conv_row_of(G, flipped, gx_row, C, g, h);
    keep(h, gx_row);
  }
}

// gx_row (input row h, NHWC) kept where the padded NHWC plane P that pad_for_rows made with the
// ReLU is above zero, i.e. where the ReLU passed its input: the mask of a ReLU that follows a map
// of x (P then holds relu(x * scale + offset) exactly as the forward computed it).
template <typename T>
void keep_where_plane_positive(const T* P, T* gx_row, int64_t C, const ConvGeometry& g, int64_t h) {
  const T* p = P + ((h + g.padding) * padded(g).width + g.padding) * C;
  const T zero(0);
  for (int64_t e = 0; e < g.width * C; ++e) gx_row[e] = p[e] > zero ? gx_row[e] : zero;
}

// Per-channel sums over an input gradient gx as it is made, a row at a time: sum gx and
// sum gx (x - mean) over the sample, x its input (NHWC), added to `sum` and `sum_xc`; `row` is
// scratch of 2C for a row's partial sums.
template <typename T>
struct InputGradSums {
  const T *x, *mean;
  double *sum, *sum_xc;
  T* row;
};

// gather_input_grads with keep_where_plane_positive(P): on the channel-blocked planes the mask is
// applied as the conv stores each output (conv_outputs_blocked). `sums` (null: none) takes gx's.
template <typename T>
void gather_input_grads_where_positive(const T* G, const T* w, T* gx, int64_t C,
                                       const ConvGeometry& g, T* flipped, const T* P,
                                       const InputGradSums<T>* sums) {
  const int64_t row_size = g.width * C;
  if (!blocks_channels<T>(C, g)) {
    gather_input_grads(G, w, gx, C, g, flipped, [&](int64_t h, T* gx_row) {
      keep_where_plane_positive(P, gx_row, C, g, h);
      if (sums)
        add_row_grad_moments(sums->x + h * row_size, gx_row, g.width, C, sums->mean, sums->sum,
                             sums->sum_xc);
    });
    return;
  }
  flip_taps(w, flipped, C, g);
  for (int64_t h = 0; h < g.height; ++h) {
    if (!sums) {
      conv_row_blocked(G, flipped, gx + h * row_size, C, g, h, P);
      continue;
    }
    for (int64_t c = 0; c < 2 * C; ++c) sums->row[c] = T(0);
    const StoredSums<T> row{sums->x + h * row_size, sums->mean, sums->row, sums->row + C};
    conv_row_blocked(G, flipped, gx + h * row_size, C, g, h, P, &row);
    for (int64_t c = 0; c < C; ++c) {
      sums->sum[c] += static_cast<double>(sums->row[c]);
      sums->sum_xc[c] += static_cast<double>(sums->row[C + c]);
    }
  }
}

template <typename T>
void conv_backward_gather(const T* x, const T* w, const T* gy, T* gx, T* gw, int64_t C,
                          const ConvGeometry& g, bool relu, T* scratch) {
  const int64_t plane = padded(g).height * padded(g).width * C;
  T* P = scratch;
  T* G = scratch + plane;
  if (gw) {
    pad_for_rows(x, P, C, g, relu);
    tap_weight_grads(P, gy, g.out_width * C, gw, C, g);
  }
  // The output gradient has the input's size and padding here, so G is laid out like P.
  pad_for_rows(gy, G, C, g, /*relu=*/false);
  gather_input_grads(G, w, gx, C, g, G + plane, [&](int64_t h, T* gx_row) {
    if (relu) pass_where_positive(x + h * g.width * C, gx_row, gx_row, g.width * C);
  });
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
