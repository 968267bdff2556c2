// The NHWC pointwise (1x1) convolution and its weight gradient, part of the NHWC kernels
// (nhwc_kernels_generic.h): a pixel's inputs are contiguous, so each output block's accumulators
// stay in registers while the inputs stream past.
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/simd_generic.h"

namespace datanas {
namespace kernels {
namespace nhwc {
namespace {
using namespace simd;

// PB pixels at a time share each weight load; the output block's accumulators stay in registers.
// Pixel p's inputs start at x + p * x_pitch, its outputs at y + p * y_pitch (the pitches exceed
// the channel counts where the pixels are a strided grid or part of a wider concatenation).
// RELU reads relu(x); GATE zeroes the outputs where gate <= 0 (gate laid out like y); STREAM
// writes y with stream_store.
template <typename T, int PB, bool RELU, bool GATE, bool STREAM>
inline void pointwise_pixels(const T* x, int64_t x_pitch, const T* wt, T* y, int64_t y_pitch,
                             int64_t inputs, int64_t outputs, int64_t p, const T* gate) {
  for_channel_blocks<T>(outputs, [&](auto blk, int64_t o0) {
    DATANAS_BLOCK_TYPES(blk);
    E acc[PB][K];
    clear(&acc[0][0], PB * K);
    for (int64_t i = 0; i < inputs; ++i) {
      const T* wp = wt + i * outputs + o0;
      E wv[K];
      for (int v = 0; v < K; ++v) wv[v] = load<E>(wp + v * L);
      for (int q = 0; q < PB; ++q) {
        // The ReLU on the broadcast vector: on the scalar, GCC made it a branch, mispredicted on
        // about every other input (a third of the speed of the plain conv).
        E xv = splat<E>(x[(p + q) * x_pitch + i]);
        if (RELU) xv = relu_of(xv);
        for (int v = 0; v < K; ++v) acc[q][v] += xv * wv[v];
      }
    }
    const E zero{};
    for (int q = 0; q < PB; ++q) {
      const int64_t at = (p + q) * y_pitch + o0;
      for (int v = 0; v < K; ++v) {
        E out = acc[q][v];
        if (GATE) out = load<E>(gate + at + v * L) > zero ? out : zero;
        if (STREAM) {
          stream_store(y + at + v * L, out);
        } else {
          store(y + at + v * L, out);
        }
      }
    }
  });
}

template <int N>
struct PixelCount {
  static constexpr int value = N;
};

// Where the outputs are one vector and the inputs come in chunks of 16 (AVX-512: 32 registers),
// a chunk's 16 weight vectors stay in registers while 4 pixels at a time stream past; each
// pixel's outputs carry from chunk to chunk through y (still in L1: 48 pixels at a time). The
// tiles reload a weight vector per input for 6 pixels and ran at about 70 % of the FMA units'
// throughput at 16 outputs, this at 90-95 % (measured: 16 and 64 inputs). Every output sums its
// inputs in the same order as the tiles. The gate applies after the last chunk, and where one
// chunk makes the outputs they can be streamed: the 1x1 conv + batch norm's input gradient of 16
// channels took 2-4 % less of its forward and backward than on the tiles (alternating runs).
constexpr int64_t kHeldChunk = 16;

template <typename T>
bool holds_weights(int64_t inputs, int64_t outputs) {
  return kVectorBytes == 64 && outputs == Simd<T>::lanes && inputs % kHeldChunk == 0;
}

template <typename T, bool GATE, bool STREAM>
void pointwise_held_weights(const T* x, int64_t x_pitch, const T* wt, T* y, int64_t y_pitch,
                            int64_t inputs, int64_t begin, int64_t end, const T* gate) {
  using E = typename Simd<T>::Vec;
  constexpr int64_t kPixels = 4, kBlock = 48;
  for (int64_t block = begin; block < end; block += kBlock) {
    const int64_t stop = end - block < kBlock ? end : block + kBlock;
    for (int64_t i0 = 0; i0 < inputs; i0 += kHeldChunk) {
      E wv[kHeldChunk];
      for (int i = 0; i < kHeldChunk; ++i) wv[i] = load<E>(wt + (i0 + i) * Simd<T>::lanes);
      const auto pixels = [&](auto count, int64_t p) {
        constexpr int N = decltype(count)::value;
        E acc[N];
        for (int q = 0; q < N; ++q) acc[q] = i0 == 0 ? E{} : load<E>(y + (p + q) * y_pitch);
#pragma GCC unroll 16
        for (int i = 0; i < kHeldChunk; ++i)
          for (int q = 0; q < N; ++q) acc[q] += splat<E>(x[(p + q) * x_pitch + i0 + i]) * wv[i];
        const bool last = i0 + kHeldChunk == inputs;
        for (int q = 0; q < N; ++q) {
          T* at = y + (p + q) * y_pitch;
          E out = acc[q];
          if (GATE && last) out = load<E>(gate + (p + q) * y_pitch) > E{} ? out : E{};
          if (STREAM) {
            stream_store(at, out);
          } else {
            store(at, out);
          }
        }
      };
      int64_t p = block;
      for (; p + kPixels <= stop; p += kPixels) pixels(PixelCount<kPixels>{}, p);
      for (; p < stop; ++p) pixels(PixelCount<1>{}, p);
    }
  }
}

template <typename T, bool RELU, bool GATE, bool STREAM = false>
void pointwise_tiles(const T* x, int64_t x_pitch, const T* wt, T* y, int64_t y_pitch,
                     int64_t inputs, int64_t outputs, int64_t begin, int64_t end, const T* gate) {
  // Streamed outputs are written once: only where one chunk of inputs makes them.
  if constexpr (!RELU) {
    if (holds_weights<T>(inputs, outputs) && (!STREAM || inputs == kHeldChunk))
      return pointwise_held_weights<T, GATE, STREAM>(x, x_pitch, wt, y, y_pitch, inputs, begin, end,
                                                     gate);
  }
  int64_t p = begin;
  const auto tile = [&](auto pixels) {
    pointwise_pixels<T, decltype(pixels)::value, RELU, GATE, STREAM>(x, x_pitch, wt, y, y_pitch,
                                                                     inputs, outputs, p, gate);
  };
  // 6 pixels x 2 vectors: 12 accumulators, the most 16 vector registers hold beside the weights.
  // The last 1-5 pixels go together too: one pixel at a time is a chain of dependent FMAs, and
  // rows of 8 or 32 pixels would spend a quarter or a sixteenth of their pixels that way.
  for (; p + 6 <= end; p += 6) tile(PixelCount<6>{});
  switch (end - p) {
    case 5:
      return tile(PixelCount<5>{});
    case 4:
      return tile(PixelCount<4>{});
    case 3:
      return tile(PixelCount<3>{});
    case 2:
      return tile(PixelCount<2>{});
    case 1:
      return tile(PixelCount<1>{});
    default:
      return;
  }
}

// dst[p * inputs + i] = relu(x[p * x_pitch + i]) for `pixels` pixels.
template <typename T>
void stage_relu(const T* x, int64_t x_pitch, T* dst, int64_t inputs, int64_t pixels) {
  for (int64_t p = 0; p < pixels; ++p) {
    for_channel_blocks<T>(inputs, [&](auto blk, int64_t c0) {
      DATANAS_BLOCK_TYPES(blk);
      for (int v = 0; v < K; ++v)
        store(dst + p * inputs + c0 + v * L, relu_of(load<E>(x + p * x_pitch + c0 + v * L)));
    });
  }
}

// Pixels [begin, end) of an input given as `count` channel parts (part i: channels[i] per pixel)
// as rows of all the channels, part after part: relu'd where `relu`. Each part's rows are read
// in order, so the hardware prefetcher follows every part.
template <typename T>
void gather_channels(const T* const* parts, const int64_t* channels, int64_t count, int64_t begin,
                     int64_t end, bool relu, T* out) {
  int64_t total = 0;
  for (int64_t i = 0; i < count; ++i) total += channels[i];
  for (int64_t p = begin; p < end; ++p) {
    T* to = out + (p - begin) * total;
    for (int64_t i = 0; i < count; ++i) {
      const T* from = parts[i] + p * channels[i];
      for_channel_blocks<T>(channels[i], [&](auto blk, int64_t c0) {
        DATANAS_BLOCK_TYPES(blk);
        for (int v = 0; v < K; ++v) {
          const E value = load<E>(from + c0 + v * L);
          store(to + c0 + v * L, relu ? relu_of(value) : value);
        }
      });
      to += channels[i];
    }
  }
}

// y = a(x) wt for pixels [begin, end) (pointwise_pixels' layout). With RELU, relu(x) is staged a
// few pixels at a time into a buffer on the stack, so the tiles run the plain loop: a ReLU per
// broadcast input costs as much as the two FMAs it feeds.
template <typename T, bool RELU, bool GATE, bool STREAM = false>
void pointwise_range(const T* x, int64_t x_pitch, const T* wt, T* y, int64_t y_pitch,
                     int64_t inputs, int64_t outputs, int64_t begin, int64_t end, const T* gate) {
  constexpr int64_t kStaged = 3072;
  const int64_t fits = inputs > 0 ? kStaged / inputs : 0;
  const int64_t chunk = (fits < 24 ? fits : 24) / 6 * 6;
  if (!RELU || chunk == 0) {
    pointwise_tiles<T, RELU, GATE, STREAM>(x, x_pitch, wt, y, y_pitch, inputs, outputs, begin, end,
                                           gate);
    return;
  }
  alignas(64) T staged[kStaged];
  for (int64_t p = begin; p < end; p += chunk) {
    const int64_t pixels = end - p < chunk ? end - p : chunk;
    stage_relu(x + p * x_pitch, x_pitch, staged, inputs, pixels);
    pointwise_tiles<T, false, GATE, STREAM>(staged, inputs, wt, y + p * y_pitch, y_pitch, inputs,
                                            outputs, 0, pixels,
                                            GATE ? gate + p * y_pitch : nullptr);
  }
}

// pointwise_range over the whole (P, inputs) x, its flags chosen at run time.
template <typename T, bool STREAM>
void pointwise_as(const T* x, const T* wt, T* y, int64_t inputs, int64_t outputs, int64_t begin,
                  int64_t end, bool relu_x, const T* gate) {
  if (relu_x && gate) {
    pointwise_range<T, true, true, STREAM>(x, inputs, wt, y, outputs, inputs, outputs, begin, end,
                                           gate);
  } else if (relu_x) {
    pointwise_range<T, true, false, STREAM>(x, inputs, wt, y, outputs, inputs, outputs, begin, end,
                                            gate);
  } else if (gate) {
    pointwise_range<T, false, true, STREAM>(x, inputs, wt, y, outputs, inputs, outputs, begin, end,
                                            gate);
  } else {
    pointwise_range<T, false, false, STREAM>(x, inputs, wt, y, outputs, inputs, outputs, begin, end,
                                             gate);
  }
}

template <typename T>
void pointwise(const T* x, const T* wt, T* y, int64_t inputs, int64_t outputs, int64_t begin,
               int64_t end, bool relu_x, const T* gate) {
  pointwise_as<T, false>(x, wt, y, inputs, outputs, begin, end, relu_x, gate);
}

// pointwise() writing y with stream_store, for outputs too large to stay in cache.
template <typename T>
void pointwise_streamed(const T* x, const T* wt, T* y, int64_t inputs, int64_t outputs,
                        int64_t begin, int64_t end, bool relu_x, const T* gate) {
  pointwise_as<T, true>(x, wt, y, inputs, outputs, begin, end, relu_x, gate);
  stream_fence();
}

// A grid of pixels: `rows` rows of `cols` pixels; pixel (r, c) of x starts at
// x + r * x_row + c * x_pixel, its gradient at gy + r * gy_row + c * gy_pixel.
struct PixelGrid {
  int64_t rows, cols, x_row, x_pixel, gy_row, gy_pixel;
};

// gw[o, i] += sum over the grid's pixels of gy[o] a(x[i]), kRows output rows of gw at a time,
// each row's block of inputs accumulated in registers over all the pixels. AVX-512's 32
// registers take 16 rows: at 16 inputs (one vector) 4 rows were 4 chains of dependent FMAs, half
// the units' throughput (measured 1.6-1.9x faster at 16-64 inputs; the same sums, in order).
// AVX2's 16 take 6 rows of two vectors beside the inputs where each input is relu'd once per
// row block (Zen 3 core: 1.05-1.2x faster than 4 rows at 16-256 inputs; without the ReLU 6 rows
// were no faster, and 8 rows spill).
template <typename T, bool RELU>
void grid_wgrad(const T* x, const T* gy, T* gw, int64_t inputs, int64_t outputs,
                const PixelGrid& grid) {
  constexpr int kRows = kVectorBytes == 64 ? 16 : kVectorBytes == 32 && RELU ? 6 : 4;
  for (int64_t o = 0; o < outputs; o += kRows) {
    const int rows = outputs - o < kRows ? static_cast<int>(outputs - o) : kRows;
    // A block of kRows whole rows reads gy without the bounds test: GCC made the test a compare
    // and branch beside every FMA, and the branches took issue slots from the FMA units.
    const auto row_block = [&](auto whole, auto blk, int64_t i0) {
      constexpr bool kWhole = decltype(whole)::value;
      DATANAS_BLOCK_TYPES(blk);
      E acc[kRows][K];
      clear(&acc[0][0], kRows * K);
      for (int64_t gr = 0; gr < grid.rows; ++gr) {
        for (int64_t c = 0; c < grid.cols; ++c) {
          const T* xp = x + gr * grid.x_row + c * grid.x_pixel + i0;
          const T* gp = gy + gr * grid.gy_row + c * grid.gy_pixel + o;
          E xv[K];
          for (int v = 0; v < K; ++v) {
            xv[v] = load<E>(xp + v * L);
            if (RELU) xv[v] = relu_of(xv[v]);
          }
          for (int r = 0; r < kRows; ++r) {
            const E g = splat<E>(kWhole || r < rows ? gp[r] : T(0));
            for (int v = 0; v < K; ++v) acc[r][v] += g * xv[v];
          }
        }
      }
      for (int r = 0; r < rows; ++r) {
        T* gp = gw + (o + r) * inputs + i0;
        for (int v = 0; v < K; ++v) store(gp + v * L, load<E>(gp + v * L) + acc[r][v]);
      }
    };
    for_channel_blocks<T>(inputs, [&](auto blk, int64_t i0) {
      if (rows == kRows) {
        row_block(std::true_type{}, blk, i0);
      } else {
        row_block(std::false_type{}, blk, i0);
      }
    });
  }
}

template <typename T>
void pointwise_wgrad(const T* x, const T* gy, T* gw, int64_t inputs, int64_t outputs, int64_t begin,
                     int64_t end, bool relu_x) {
  const PixelGrid run{1, end - begin, 0, inputs, 0, outputs};
  if (relu_x) {
    grid_wgrad<T, true>(x + begin * inputs, gy + begin * outputs, gw, inputs, outputs, run);
  } else {
    grid_wgrad<T, false>(x + begin * inputs, gy + begin * outputs, gw, inputs, outputs, run);
  }
}

}  // namespace
}  // namespace nhwc
}  // namespace kernels
}  // namespace datanas
