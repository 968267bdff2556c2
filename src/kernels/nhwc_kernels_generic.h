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

template <typename T>
void max_pool_forward(const T* x, T* y, int64_t C, const PoolGeometry& g) {
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    for (int64_t ow = 0; ow < g.out_width; ++ow) {
      const TapRange r = pool_window(oh, ow, g);
      T* yp = y + (oh * g.out_width + ow) * C;
      for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
        DATANAS_BLOCK_TYPES(blk);
        E m[K];
        window_max<E, K, L>(x, C, c0, r, g.width, m);
        for (int v = 0; v < K; ++v) store(yp + c0 + v * L, m[v]);
      });
    }
  }
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

template <typename T>
void avg_pool_forward(const T* x, T* y, int64_t C, const PoolGeometry& g) {
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    for (int64_t ow = 0; ow < g.out_width; ++ow) {
      const TapRange r = pool_window(oh, ow, g);
      const T count = static_cast<T>((r.i1 - r.i0) * (r.j1 - r.j0));
      T* yp = y + (oh * g.out_width + ow) * C;
      for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
        DATANAS_BLOCK_TYPES(blk);
        E sum[K];
        clear(sum, K);
        for_window_taps(r, g.width, C, [&](int64_t at) {
          for (int v = 0; v < K; ++v) sum[v] += load<E>(x + at + c0 + v * L);
        });
        for (int v = 0; v < K; ++v) store(yp + c0 + v * L, sum[v] / splat<E>(count));
      });
    }
  }
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
