// The NHWC kernels, included by nhwc_kernels_portable.cpp and nhwc_kernels_avx2.cpp; each file
// gets its own copy (internal linkage; namespace nhwc keeps them apart from the NCHW plane
// kernels). Channels go in blocks of simd_generic.h: two vectors (2 x 8 floats with AVX), one,
// then single values; a block's accumulators are locals kept in registers.
#pragma once
#include <cstdint>

#include "kernels/nhwc_batch_norm_generic.h"
#include "kernels/nhwc_block_backward_generic.h"
#include "kernels/nhwc_block_generic.h"
#include "kernels/nhwc_conv_backward_generic.h"
#include "kernels/nhwc_conv_generic.h"
#include "kernels/nhwc_kernels.h"
#include "kernels/nhwc_pointwise_generic.h"
#include "kernels/nhwc_reduce_generic.h"
#include "kernels/simd_generic.h"

namespace datanas {
namespace kernels {
namespace nhwc {
namespace {
using namespace simd;

// The taps of output (oh, ow) that fall inside the input: rows i in [i0, i1), columns [j0, j1).
struct TapRange {
  int64_t i0, i1, j0, j1, top, left;  // top/left: input row/column of tap (0, 0)
};

inline TapRange tap_range(int64_t oh, int64_t ow, int64_t H, int64_t W, int64_t k, int64_t s,
                          int64_t p, int64_t d) {
  TapRange r{0, k, 0, k, oh * s - p, ow * s - p};
  while (r.i0 < k && r.top + r.i0 * d < 0) ++r.i0;
  while (r.i1 > r.i0 && r.top + (r.i1 - 1) * d >= H) --r.i1;
  while (r.j0 < k && r.left + r.j0 * d < 0) ++r.j0;
  while (r.j1 > r.j0 && r.left + (r.j1 - 1) * d >= W) --r.j1;
  return r;
}

// The 3x3 window of output (oh, ow) with padding 1, clipped to the input.
inline TapRange pool_window(int64_t oh, int64_t ow, const PoolGeometry& g) {
  return tap_range(oh, ow, g.height, g.width, 3, g.stride, 1, 1);
}

// fn(offset) for the offset (in values, from x) of each tap of window r in row-major order, in
// an input W pixels wide with C channels. Most windows are whole: their loops have constant
// bounds and unroll (variable bounds made the pools spend more on loop control than on data).
template <typename Fn>
inline void for_window_taps(const TapRange& r, int64_t W, int64_t C, const Fn& fn) {
  const int64_t origin = (r.top * W + r.left) * C;
  if (r.i0 == 0 && r.i1 == 3 && r.j0 == 0 && r.j1 == 3) {
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 3; ++j) fn(origin + (i * W + j) * C);
    return;
  }
  for (int64_t i = r.i0; i < r.i1; ++i)
    for (int64_t j = r.j0; j < r.j1; ++j) fn(origin + (i * W + j) * C);
}

// m[v] = the window's maximum, scanning taps in row-major order from -inf with LibTorch's rule
// (a larger value or a NaN replaces it).
template <typename E, int K, int L, typename T>
inline void window_max(const T* x, int64_t C, int64_t c0, const TapRange& r, int64_t W, E* m) {
  for (int v = 0; v < K; ++v) m[v] = splat<E>(static_cast<T>(-__builtin_inf()));
  for_window_taps(r, W, C, [&](int64_t at) {
    for (int v = 0; v < K; ++v) {
      const E xv = load<E>(x + at + c0 + v * L);
      m[v] = ((xv > m[v]) | (xv != xv)) ? xv : m[v];
    }
  });
}

// Slides the 3x3 window along an output row for one channel block, each input column reduced
// over the window's rows once (not once per window that holds it): column(w, out) reduces column
// w, `outside` stands for a column off the input, and emit(ow, left, mid, right) gets the three
// columns of output ow.
template <typename E, int K, typename Column, typename Emit>
inline void slide_row(const PoolGeometry& g, E outside, const Column& column, const Emit& emit) {
  E left[K], mid[K], right[K];
  for (int v = 0; v < K; ++v) left[v] = outside;
  column(0, mid);
  for (int64_t ow = 0; ow < g.out_width; ++ow) {
    const int64_t w = ow * g.stride;  // the window's middle column
    if (w + 1 < g.width) {
      column(w + 1, right);
    } else {
      for (int v = 0; v < K; ++v) right[v] = outside;
    }
    emit(ow, left, mid, right);
    for (int v = 0; v < K; ++v) left[v] = g.stride == 1 ? mid[v] : right[v];
    if (g.stride == 1) {
      for (int v = 0; v < K; ++v) mid[v] = right[v];
    } else if (w + 2 < g.width) {
      column(w + 2, mid);
    }
  }
}

// A larger value or a NaN replaces the maximum so far (LibTorch's rule): a window with a NaN
// gives NaN. Reducing columns first leaves every maximum as it was; only which of two equal
// zeros, +0 or -0, a window returns may differ from a row-major scan.
template <typename E>
inline E nan_max(E candidate, E so_far) {
  return ((candidate > so_far) | (candidate != candidate)) ? candidate : so_far;
}

// A 3x3 pool's forward a row at a time: each input column folded over the window's rows (from
// its first row: fold(next, so_far)), then finish(left, mid, right, inside) makes an output from
// its window's three columns and the number of its pixels inside the input.
template <typename T, typename Fold, typename Finish>
void pool_forward(const T* x, T* y, int64_t C, const PoolGeometry& g, T outside, const Fold& fold,
                  const Finish& finish) {
  const int64_t row = g.width * C;
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    const TapRange rows = pool_window(oh, 0, g);  // its rows [i0, i1) hold for the whole row
    const int64_t row_count = rows.i1 - rows.i0;
    const T* xr = x + (rows.top + rows.i0) * row;
    T* yr = y + oh * g.out_width * C;
    for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
      DATANAS_BLOCK_TYPES(blk);
      const auto column = [&](int64_t w, E* acc) {
        for (int v = 0; v < K; ++v) acc[v] = load<E>(xr + w * C + c0 + v * L);
        for (int64_t r = 1; r < row_count; ++r)
          for (int v = 0; v < K; ++v)
            acc[v] = fold(load<E>(xr + r * row + w * C + c0 + v * L), acc[v]);
      };
      slide_row<E, K>(g, splat<E>(outside), column,
                      [&](int64_t ow, const E* left, const E* mid, const E* right) {
                        // pool_window's column clipping, inline: it runs per output.
                        const int64_t w = ow * g.stride;
                        const E inside =
                            splat<E>(static_cast<T>(row_count * (1 + (w > 0) + (w + 1 < g.width))));
                        for (int v = 0; v < K; ++v)
                          store(yr + ow * C + c0 + v * L,
                                finish(left[v], mid[v], right[v], inside));
                      });
    });
  }
}

template <typename T>
void max_pool_forward(const T* x, T* y, int64_t C, const PoolGeometry& g) {
  pool_forward(
      x, y, C, g, static_cast<T>(-__builtin_inf()),
      [](auto next, auto so_far) { return nan_max(next, so_far); },
      [](auto left, auto mid, auto right, auto) { return nan_max(right, nan_max(mid, left)); });
}

// The gradient of output pixel `at`'s channels c0 .. c0 + K L - 1: gy there, or through a
// batch norm's map, with y.
template <typename E, int K, int L, typename T>
inline void output_grads(const T* y, const T* gy, const PoolOutputGradMap<T>* map, int64_t at,
                         int64_t c0, E* out) {
  for (int v = 0; v < K; ++v) out[v] = load<E>(gy + at + c0 + v * L);
  if (!map) return;
  for (int v = 0; v < K; ++v) {
    const int64_t c = c0 + v * L;
    out[v] = load<E>(map->a + c) * out[v] + load<E>(map->b + c) * load<E>(y + at + c) +
             load<E>(map->c0 + c);
  }
}

// The first tap equal to a window's maximum takes its gradient. The maxima are y, the forward's
// output, or with y null found again (cheaper than storing indices).
template <typename T>
void max_pool_backward(const T* x, const T* y, const T* gy, const PoolOutputGradMap<T>* map, T* gx,
                       int64_t C, const PoolGeometry& g) {
  for (int64_t e = 0; e < g.height * g.width * C; ++e) gx[e] = T(0);
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    for (int64_t ow = 0; ow < g.out_width; ++ow) {
      const TapRange r = pool_window(oh, ow, g);
      const int64_t out_at = (oh * g.out_width + ow) * C;
      for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
        DATANAS_BLOCK_TYPES(blk);
        E m[K], pending[K];  // pending: the gradient not yet given to a tap
        if (y) {
          for (int v = 0; v < K; ++v) m[v] = load<E>(y + out_at + c0 + v * L);
        } else {
          window_max<E, K, L>(x, C, c0, r, g.width, m);
        }
        output_grads<E, K, L>(y, gy, map, out_at, c0, pending);
        const E zero{};
        for_window_taps(r, g.width, C, [&](int64_t at) {
          for (int v = 0; v < K; ++v) {
            const E xv = load<E>(x + at + c0 + v * L);
            store(gx + at + c0 + v * L,
                  load<E>(gx + at + c0 + v * L) + (xv == m[v] ? pending[v] : zero));
            pending[v] = xv == m[v] ? zero : pending[v];
          }
        });
      });
    }
  }
}

// count_include_pad = false: a window's sum over its pixels inside the input.
template <typename T>
void avg_pool_forward(const T* x, T* y, int64_t C, const PoolGeometry& g) {
  pool_forward(
      x, y, C, g, T(0), [](auto next, auto so_far) { return so_far + next; },
      [](auto left, auto mid, auto right, auto inside) { return (left + mid + right) / inside; });
}

template <typename T>
void avg_pool_backward(const T* y, const T* gy, const PoolOutputGradMap<T>* map, T* gx, int64_t C,
                       const PoolGeometry& g) {
  for (int64_t e = 0; e < g.height * g.width * C; ++e) gx[e] = T(0);
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    for (int64_t ow = 0; ow < g.out_width; ++ow) {
      const TapRange r = pool_window(oh, ow, g);
      const T count = static_cast<T>((r.i1 - r.i0) * (r.j1 - r.j0));
      const int64_t out_at = (oh * g.out_width + ow) * C;
      for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
        DATANAS_BLOCK_TYPES(blk);
        E share[K];
        output_grads<E, K, L>(y, gy, map, out_at, c0, share);
        for (int v = 0; v < K; ++v) share[v] = share[v] / splat<E>(count);
        for_window_taps(r, g.width, C, [&](int64_t at) {
          for (int v = 0; v < K; ++v)
            store(gx + at + c0 + v * L, load<E>(gx + at + c0 + v * L) + share[v]);
        });
      });
    }
  }
}

template <typename T>
NhwcKernels<T> generic_nhwc_table() {
  NhwcKernels<T> t;
  t.conv_forward = conv_forward<T>;
  t.conv_backward = conv_backward<T>;
  t.max_pool_forward = max_pool_forward<T>;
  t.max_pool_backward = max_pool_backward<T>;
  t.avg_pool_forward = avg_pool_forward<T>;
  t.avg_pool_backward = avg_pool_backward<T>;
  t.pointwise = pointwise<T>;
  t.pointwise_streamed = pointwise_streamed<T>;
  t.pointwise_wgrad = pointwise_wgrad<T>;
  t.gather_channels = gather_channels<T>;
  t.dw_pw_forward = dw_pw_forward<T>;
  t.dw_pw_backward = dw_pw_backward<T>;
  t.reduce_forward = reduce_forward<T>;
  t.reduce_backward = reduce_backward<T>;
  t.moments = moments<T>;
  t.scale_shift = scale_shift<T>;
  t.grad_moments = grad_moments<T>;
  t.normalize_backward = normalize_backward<T>;
  return t;
}

}  // namespace
}  // namespace nhwc
}  // namespace kernels
}  // namespace datanas
