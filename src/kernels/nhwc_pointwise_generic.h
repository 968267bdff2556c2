// The NHWC pointwise (1x1) convolution and its weight gradient, part of the NHWC kernels
// (nhwc_kernels_generic.h): a pixel's inputs are contiguous, so each output block's accumulators
// stay in registers while the inputs stream past.
#pragma once
#include <cstdint>

#include "kernels/simd_generic.h"

namespace datanas {
namespace kernels {
namespace nhwc {
namespace {
using namespace simd;

// PB pixels at a time share each weight load; the output block's accumulators stay in registers.
// RELU reads relu(x); GATE zeroes the outputs where gate <= 0 (gate laid out like y).
template <typename T, int PB, bool RELU, bool GATE>
inline void pointwise_pixels(const T* x, const T* wt, T* y, int64_t inputs, int64_t outputs,
                             int64_t p, const T* gate) {
  for_channel_blocks<T>(outputs, [&](auto blk, int64_t o0) {
    DATANAS_BLOCK_TYPES(blk);
    E acc[PB][K];
    clear(&acc[0][0], PB * K);
    for (int64_t i = 0; i < inputs; ++i) {
      const T* wp = wt + i * outputs + o0;
      E wv[K];
      for (int v = 0; v < K; ++v) wv[v] = load<E>(wp + v * L);
      for (int q = 0; q < PB; ++q) {
        T xs = x[(p + q) * inputs + i];
        if (RELU) xs = xs > T(0) ? xs : T(0);
        const E xv = splat<E>(xs);
        for (int v = 0; v < K; ++v) acc[q][v] += xv * wv[v];
      }
    }
    const E zero{};
    for (int q = 0; q < PB; ++q) {
      const int64_t at = (p + q) * outputs + o0;
      for (int v = 0; v < K; ++v) {
        E out = acc[q][v];
        if (GATE) out = load<E>(gate + at + v * L) > zero ? out : zero;
        store(y + at + v * L, out);
      }
    }
  });
}

template <typename T, bool RELU, bool GATE>
void pointwise_range(const T* x, const T* wt, T* y, int64_t inputs, int64_t outputs, int64_t begin,
                     int64_t end, const T* gate) {
  // 6 pixels x 2 vectors: 12 accumulators, the most 16 vector registers hold beside the weights.
  // The last 1-5 pixels go together too: one pixel at a time is a chain of dependent FMAs, and
  // rows of 8 or 32 pixels would spend a quarter or a sixteenth of their pixels that way.
  int64_t p = begin;
  for (; p + 6 <= end; p += 6)
    pointwise_pixels<T, 6, RELU, GATE>(x, wt, y, inputs, outputs, p, gate);
  switch (end - p) {
    case 5:
      pointwise_pixels<T, 5, RELU, GATE>(x, wt, y, inputs, outputs, p, gate);
      break;
    case 4:
      pointwise_pixels<T, 4, RELU, GATE>(x, wt, y, inputs, outputs, p, gate);
      break;
    case 3:
      pointwise_pixels<T, 3, RELU, GATE>(x, wt, y, inputs, outputs, p, gate);
      break;
    case 2:
      pointwise_pixels<T, 2, RELU, GATE>(x, wt, y, inputs, outputs, p, gate);
      break;
    case 1:
      pointwise_pixels<T, 1, RELU, GATE>(x, wt, y, inputs, outputs, p, gate);
      break;
    default:
      break;
  }
}

template <typename T>
void pointwise(const T* x, const T* wt, T* y, int64_t inputs, int64_t outputs, int64_t begin,
               int64_t end, bool relu_x, const T* gate) {
  if (relu_x && gate) {
    pointwise_range<T, true, true>(x, wt, y, inputs, outputs, begin, end, gate);
  } else if (relu_x) {
    pointwise_range<T, true, false>(x, wt, y, inputs, outputs, begin, end, gate);
  } else if (gate) {
    pointwise_range<T, false, true>(x, wt, y, inputs, outputs, begin, end, gate);
  } else {
    pointwise_range<T, false, false>(x, wt, y, inputs, outputs, begin, end, gate);
  }
}

// Four output rows of gw at a time, each row's block of inputs accumulated in registers over
// the pixels.
template <typename T, bool RELU>
void pointwise_wgrad_range(const T* x, const T* gy, T* gw, int64_t inputs, int64_t outputs,
                           int64_t begin, int64_t end) {
  constexpr int kRows = 4;
  for (int64_t o = 0; o < outputs; o += kRows) {
    const int rows = outputs - o < kRows ? static_cast<int>(outputs - o) : kRows;
    for_channel_blocks<T>(inputs, [&](auto blk, int64_t i0) {
      DATANAS_BLOCK_TYPES(blk);
      E acc[kRows][K];
      clear(&acc[0][0], kRows * K);
      for (int64_t p = begin; p < end; ++p) {
        E xv[K];
        for (int v = 0; v < K; ++v) {
          xv[v] = load<E>(x + p * inputs + i0 + v * L);
          if (RELU) xv[v] = relu_of(xv[v]);
        }
        for (int r = 0; r < kRows; ++r) {
          const E g = splat<E>(r < rows ? gy[p * outputs + o + r] : T(0));
          for (int v = 0; v < K; ++v) acc[r][v] += g * xv[v];
        }
      }
      for (int r = 0; r < rows; ++r) {
        T* gp = gw + (o + r) * inputs + i0;
        for (int v = 0; v < K; ++v) store(gp + v * L, load<E>(gp + v * L) + acc[r][v]);
      }
    });
  }
}

template <typename T>
void pointwise_wgrad(const T* x, const T* gy, T* gw, int64_t inputs, int64_t outputs, int64_t begin,
                     int64_t end, bool relu_x) {
  if (relu_x) {
    pointwise_wgrad_range<T, true>(x, gy, gw, inputs, outputs, begin, end);
  } else {
    pointwise_wgrad_range<T, false>(x, gy, gw, inputs, outputs, begin, end);
  }
}

}  // namespace
}  // namespace nhwc
}  // namespace kernels
}  // namespace datanas
