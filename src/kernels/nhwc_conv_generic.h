// The NHWC depthwise convolution's forward, part of the NHWC kernels (nhwc_kernels_generic.h;
// the backward is in nhwc_conv_backward_generic.h): each sample is first copied into scratch
// with its zero border.
#pragma once
#include <cstdint>

#include "kernels/nhwc_kernels.h"
#include "kernels/simd_generic.h"

namespace datanas {
namespace kernels {
namespace nhwc {
namespace {
using namespace simd;

// The convolutions first copy a sample into scratch with its zero border (and the ReLU applied,
// which is 0 on the border too): then every output reads only in-bounds taps, and the ReLU runs
// once per input instead of once per tap.
struct PaddedPlane {
  int64_t height, width;  // with the border
};

inline PaddedPlane padded(const ConvGeometry& g) {
  return {g.height + 2 * g.padding, g.width + 2 * g.padding};
}

// Zeroes the border of a padded plane (padded(g), C channels).
template <typename T>
void zero_border(T* out, int64_t C, const ConvGeometry& g) {
  const PaddedPlane pp = padded(g);
  const int64_t row = pp.width * C, border = g.padding * C, inner = g.width * C;
  for (int64_t e = 0; e < g.padding * row; ++e) out[e] = T(0);
  for (int64_t h = 0; h < g.height; ++h) {
    T* dst = out + (h + g.padding) * row;
    for (int64_t e = 0; e < border; ++e) dst[e] = T(0);
    for (int64_t e = border + inner; e < row; ++e) dst[e] = T(0);
  }
  for (int64_t e = (g.padding + g.height) * row; e < pp.height * row; ++e) out[e] = T(0);
}

// A pending per-channel affine map (scale non-null: the batch norm of the block before, applied
// on the way in) maps x to x * scale[c] + offset[c] before the ReLU.
template <typename T>
void pad_sample(const T* x, T* out, int64_t C, const ConvGeometry& g, bool relu,
                const T* scale = nullptr, const T* offset = nullptr) {
  const int64_t row = padded(g).width * C, border = g.padding * C, inner = g.width * C;
  zero_border(out, C, g);
  for (int64_t h = 0; h < g.height; ++h) {
    T* dst = out + (h + g.padding) * row + border;
    const T* src = x + h * inner;
    if (h + kPrefetchRows < g.height) prefetch_lines(src + kPrefetchRows * inner, inner);
    if (scale) {
      // Vectors of the map kept in registers: a scalar loop over C re-read scale and offset for
      // every pixel and ran at a seventh of this speed.
      for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
        DATANAS_BLOCK_TYPES(blk);
        E s[K], o[K];
        for (int v = 0; v < K; ++v) s[v] = load<E>(scale + c0 + v * L);
        for (int v = 0; v < K; ++v) o[v] = load<E>(offset + c0 + v * L);
        for (int64_t w = 0; w < g.width; ++w) {
          for (int v = 0; v < K; ++v) {
            const E value = load<E>(src + w * C + c0 + v * L) * s[v] + o[v];
            store(dst + w * C + c0 + v * L, relu ? relu_of(value) : value);
          }
        }
      });
    } else if (relu) {
      for (int64_t e = 0; e < inner; ++e) dst[e] = src[e] < T(0) ? T(0) : src[e];
    } else {
      for (int64_t e = 0; e < inner; ++e) dst[e] = src[e];
    }
  }
}

// Outputs ow .. ow + PB - 1 of row oh from the padded sample P; each tap's weights are loaded
// once for the PB outputs.
template <typename T, int PB>
inline void conv_outputs(const T* P, const T* w, T* y_row, int64_t C, const ConvGeometry& g,
                         int64_t oh, int64_t ow) {
  const int64_t k = g.kernel, d = g.dilation, s = g.stride, pitch = padded(g).width * C;
  for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
    DATANAS_BLOCK_TYPES(blk);
    E acc[PB][K];
    clear(&acc[0][0], PB * K);
    for (int64_t i = 0; i < k; ++i) {
      const T* row = P + (oh * s + i * d) * pitch + ow * s * C + c0;
      for (int64_t j = 0; j < k; ++j) {
        E wv[K];
        for (int v = 0; v < K; ++v) wv[v] = load<E>(w + (i * k + j) * C + c0 + v * L);
        for (int q = 0; q < PB; ++q) {
          const T* xp = row + (q * s + j * d) * C;
          for (int v = 0; v < K; ++v) acc[q][v] += wv[v] * load<E>(xp + v * L);
        }
      }
    }
    for (int q = 0; q < PB; ++q)
      for (int v = 0; v < K; ++v) store(y_row + (ow + q) * C + c0 + v * L, acc[q][v]);
  });
}

// The sliding multiply-adds of PB outputs of one channel vector: tap row i's inputs start at
// x + i * row_step, input t at + t * step, tap (i, j)'s weights at w + (i KS + j) C. Each input of
// a tap row is loaded once and serves every (output, tap) pair that reads it: PB + (KS - 1) D
// loads per PB KS multiply-adds. Always inlined, so a step known at the call (the channel-blocked
// plane's) is a constant in the addresses.
template <typename E, typename T, int KS, int D, int PB>
__attribute__((always_inline)) inline void slide_taps(const T* x, int64_t row_step, int64_t step,
                                                      const T* w, int64_t C, E (&acc)[PB]) {
  constexpr int kInputs = PB + (KS - 1) * D;
  clear(acc, PB);
  for (int i = 0; i < KS; ++i) {
    const T* row = x + i * row_step;
    E wv[KS];
    for (int j = 0; j < KS; ++j) wv[j] = load<E>(w + (i * KS + j) * C);
#pragma GCC unroll 32
    for (int t = 0; t < kInputs; ++t) {
      E xv = load<E>(row + t * step);
      hold_in_register(xv);
#pragma GCC unroll 8
      for (int j = 0; j < KS; ++j) {
        const int q = t - j * D;
        if (q >= 0 && q < PB) acc[q] += wv[j] * xv;
      }
    }
  }
}

// Stride 1, taps KS x KS at dilation D: outputs ow .. ow + PB - 1 of row oh, one vector of
// channels at a time (slide_taps), where conv_outputs loads an input per multiply-add and was
// bound by loads.
template <typename T, int KS, int D, int PB>
inline void conv_outputs_sliding(const T* P, const T* w, T* y_row, int64_t C, const ConvGeometry& g,
                                 int64_t oh, int64_t ow) {
  const int64_t pitch = padded(g).width * C;
  for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
    DATANAS_BLOCK_TYPES(blk);
    for (int v = 0; v < K; ++v) {
      const int64_t c = c0 + v * L;
      E acc[PB];
      slide_taps<E, T, KS, D, PB>(P + oh * pitch + ow * C + c, D * pitch, C, w + c, C, acc);
      for (int q = 0; q < PB; ++q) store(y_row + (ow + q) * C + c, acc[q]);
    }
  });
}

// Output row oh from the padded sample P.
template <typename T>
inline void conv_row(const T* P, const T* w, T* y_row, int64_t C, const ConvGeometry& g,
                     int64_t oh) {
  constexpr int PB = 8;
  int64_t ow = 0;
  if (g.stride == 1) {
    const int64_t k = g.kernel, d = g.dilation;
    for (; ow + PB <= g.out_width; ow += PB) {
      if (k == 3 && d == 1) {
        conv_outputs_sliding<T, 3, 1, PB>(P, w, y_row, C, g, oh, ow);
      } else if (k == 3 && d == 2) {
        conv_outputs_sliding<T, 3, 2, PB>(P, w, y_row, C, g, oh, ow);
      } else if (k == 5 && d == 1) {
        conv_outputs_sliding<T, 5, 1, PB>(P, w, y_row, C, g, oh, ow);
      } else if (k == 5 && d == 2) {
        conv_outputs_sliding<T, 5, 2, PB>(P, w, y_row, C, g, oh, ow);
      } else {
        break;
      }
    }
  }
  for (; ow + 4 <= g.out_width; ow += 4) conv_outputs<T, 4>(P, w, y_row, C, g, oh, ow);
  for (; ow < g.out_width; ++ow) conv_outputs<T, 1>(P, w, y_row, C, g, oh, ow);
}

// The padded sample in channel blocks: block b holds channels [b L, b L + L) (L = the vector's
// lanes) of every padded pixel, L values apart, so the inputs of a tap row are at offsets the
// compiler knows (t L) from one pointer. In NHWC they are t C apart with C known only at run
// time, and GCC ran out of registers for the offsets (spilling them on every tap row) and kept
// the depthwise rows far from the FMA units' throughput. For stride 1, C a multiple of L and the
// four tap shapes of the cell space; conv_row reads NHWC otherwise.
template <typename T>
inline bool blocks_channels(int64_t C, const ConvGeometry& g) {
  const bool taps = (g.kernel == 3 || g.kernel == 5) && (g.dilation == 1 || g.dilation == 2);
  return g.stride == 1 && taps && C % Simd<T>::lanes == 0;
}

// pad_sample into the channel-blocked layout (where blocks_channels). The sizes are copied into
// locals: the vector stores may alias anything, and GCC re-read g's fields after every one.
template <typename T>
void pad_sample_blocked(const T* x, T* out, int64_t C, const ConvGeometry& g, bool relu,
                        const T* scale = nullptr, const T* offset = nullptr) {
  using V = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::lanes;
  const int64_t H = g.height, W = g.width, pad = g.padding;
  const int64_t Hp = H + 2 * pad, Wp = W + 2 * pad, blocks = C / L;
  const V zero{};
  for (int64_t b = 0; b < blocks; ++b) {
    const V s = scale ? load<V>(scale + b * L) : zero;
    const V o = scale ? load<V>(offset + b * L) : zero;
    T* dst = out + b * Hp * Wp * L;
    for (int64_t h = 0; h < Hp; ++h) {
      T* row = dst + h * Wp * L;
      if (h < pad || h >= pad + H) {
        for (int64_t w = 0; w < Wp; ++w) store(row + w * L, zero);
        continue;
      }
      const T* src = x + (h - pad) * W * C + b * L;
      if (b == 0 && h - pad + kPrefetchRows < H)
        prefetch_lines(x + (h - pad + kPrefetchRows) * W * C, W * C);
      for (int64_t w = 0; w < pad; ++w) store(row + w * L, zero);
      for (int64_t w = 0; w < W; ++w) {
        V v = load<V>(src + w * C);
        if (scale) v = v * s + o;
        store(row + (pad + w) * L, relu ? relu_of(v) : v);
      }
      for (int64_t w = pad + W; w < Wp; ++w) store(row + w * L, zero);
    }
  }
}

// Per-channel sums of the outputs a masked conv stores, added as they leave registers: sum y and
// sum y (x - mean), x the unpadded NHWC row (of the outputs' pixels) the mask was made from.
template <typename T>
struct StoredSums {
  const T *x_row, *mean;
  T *sum, *sum_xc;  // C each
};

// StoredSums of the n outputs y[q] (pixels ow + q, channels c0 ..) in two chains each.
template <typename V, typename T>
inline void add_stored_sums(const V* y, int n, const StoredSums<T>& sums, int64_t C, int64_t ow,
                            int64_t c0) {
  const V mean = load<V>(sums.mean + c0);
  V s[2] = {load<V>(sums.sum + c0), V{}}, sx[2] = {load<V>(sums.sum_xc + c0), V{}};
  for (int q = 0; q < n; ++q) {
    s[q & 1] += y[q];
    sx[q & 1] += y[q] * (load<V>(sums.x_row + (ow + q) * C + c0) - mean);
  }
  store(sums.sum + c0, s[0] + s[1]);
  store(sums.sum_xc + c0, sx[0] + sx[1]);
}

// conv_outputs_sliding on the channel-blocked plane Pb: the same multiply-adds in the same order.
// With `mask` (a plane laid out as Pb, of the input's size and padding: the gather form of the
// backward), an output is stored where the mask's value at its own pixel is above zero, else 0:
// the ReLU's mask applied as the outputs leave registers instead of in a pass over the row.
// `sums` (null: none; with a mask only) takes the stored outputs' sums.
template <typename T, int KS, int D, int PB>
inline void conv_outputs_blocked(const T* Pb, const T* w, T* y_row, int64_t C,
                                 const ConvGeometry& g, int64_t oh, int64_t ow, const T* mask,
                                 const StoredSums<T>* sums) {
  using V = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::lanes;
  const int64_t pitch = padded(g).width * L, plane = padded(g).height * pitch;
  const V zero{};
  for (int64_t b = 0; b < C / L; ++b) {
    V acc[PB];
    slide_taps<V, T, KS, D, PB>(Pb + b * plane + oh * pitch + ow * L, D * pitch, L, w + b * L, C,
                                acc);
    if (mask) {
      const T* m = mask + b * plane + (oh + g.padding) * pitch + (ow + g.padding) * L;
      for (int q = 0; q < PB; ++q) acc[q] = load<V>(m + q * L) > zero ? acc[q] : zero;
      for (int q = 0; q < PB; ++q) store(y_row + (ow + q) * C + b * L, acc[q]);
      if (sums) add_stored_sums<V>(acc, PB, *sums, C, ow, b * L);
    } else {
      for (int q = 0; q < PB; ++q) store(y_row + (ow + q) * C + b * L, acc[q]);
    }
  }
}

template <typename T, int KS, int D>
inline void conv_row_blocked_taps(const T* Pb, const T* w, T* y_row, int64_t C,
                                  const ConvGeometry& g, int64_t oh, const T* mask,
                                  const StoredSums<T>* sums) {
  int64_t ow = 0;
  // 16 accumulator chains where AVX-512's 32 registers hold them: 8 only just cover the FMA
  // latency of the two units.
  if constexpr (kVectorBytes == 64)
    for (; ow + 16 <= g.out_width; ow += 16)
      conv_outputs_blocked<T, KS, D, 16>(Pb, w, y_row, C, g, oh, ow, mask, sums);
  for (; ow + 8 <= g.out_width; ow += 8)
    conv_outputs_blocked<T, KS, D, 8>(Pb, w, y_row, C, g, oh, ow, mask, sums);
  for (; ow + 4 <= g.out_width; ow += 4)
    conv_outputs_blocked<T, KS, D, 4>(Pb, w, y_row, C, g, oh, ow, mask, sums);
  for (; ow < g.out_width; ++ow)
    conv_outputs_blocked<T, KS, D, 1>(Pb, w, y_row, C, g, oh, ow, mask, sums);
}

// Output row oh (NHWC) from the channel-blocked padded sample Pb; `mask` and `sums` as
// conv_outputs_blocked.
template <typename T>
inline void conv_row_blocked(const T* Pb, const T* w, T* y_row, int64_t C, const ConvGeometry& g,
                             int64_t oh, const T* mask = nullptr,
                             const StoredSums<T>* sums = nullptr) {
  if (g.kernel == 3) {
    if (g.dilation == 1) return conv_row_blocked_taps<T, 3, 1>(Pb, w, y_row, C, g, oh, mask, sums);
    return conv_row_blocked_taps<T, 3, 2>(Pb, w, y_row, C, g, oh, mask, sums);
  }
  if (g.dilation == 1) return conv_row_blocked_taps<T, 5, 1>(Pb, w, y_row, C, g, oh, mask, sums);
  conv_row_blocked_taps<T, 5, 2>(Pb, w, y_row, C, g, oh, mask, sums);
}

// The padded sample of x in whichever layout conv_row_of reads for (C, g).
template <typename T>
void pad_for_rows(const T* x, T* out, int64_t C, const ConvGeometry& g, bool relu,
                  const T* scale = nullptr, const T* offset = nullptr) {
  if (blocks_channels<T>(C, g)) {
    pad_sample_blocked(x, out, C, g, relu, scale, offset);
  } else {
    pad_sample(x, out, C, g, relu, scale, offset);
  }
}

// Output row oh from a plane that pad_for_rows made.
template <typename T>
inline void conv_row_of(const T* P, const T* w, T* y_row, int64_t C, const ConvGeometry& g,
                        int64_t oh) {
  if (blocks_channels<T>(C, g)) {
    conv_row_blocked(P, w, y_row, C, g, oh);
  } else {
    conv_row(P, w, y_row, C, g, oh);
  }
}

// Scratch: the padded sample, and (backward) its padded input gradient or padded output
// gradient and the flipped taps.
inline int64_t conv_scratch(const ConvGeometry& g, int64_t C) {
  const PaddedPlane pp = padded(g);
  return 2 * pp.height * pp.width * C + g.kernel * g.kernel * C;
}

template <typename T>
void conv_forward(const T* x, const T* w, T* y, int64_t C, const ConvGeometry& g, bool relu,
                  T* scratch) {
  pad_for_rows(x, scratch, C, g, relu);
  for (int64_t oh = 0; oh < g.out_height; ++oh)
    conv_row_of(scratch, w, y + oh * g.out_width * C, C, g, oh);
}

}  // namespace
}  // namespace nhwc
}  // namespace kernels
}  // namespace datanas
