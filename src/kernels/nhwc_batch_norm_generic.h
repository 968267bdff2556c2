// The batch-norm passes of the NHWC kernels (nhwc_kernels_generic.h) over (pixels, C) data: the
// moments, the scaling, the gradient sums and the input gradient's map, and the per-row sums the
// fused blocks gather while a row is in cache.
#pragma once
#include <cstdint>

#include "kernels/simd_generic.h"

namespace datanas {
namespace kernels {
namespace nhwc {
namespace {
using namespace simd;

// Independent partial sums per channel vector in the row sums below: with one chain per sum,
// every pixel waits for the previous pixel's add (a 16-channel row under AVX-512 is one vector a
// pixel). K vectors of a channel block count as K chains.
template <int K>
constexpr int kSumChains = K >= 4 ? 1 : 4 / K;

// add(u, p) for every pixel p < pixels, pixel p in chain u = p mod U (the last pixels in chain 0).
template <int U, typename Add>
inline void over_pixels_in_chains(int64_t pixels, const Add& add) {
  int64_t p = 0;
  for (; p + U <= pixels; p += U)
    for (int u = 0; u < U; ++u) add(u, p + u);
  for (; p < pixels; ++p) add(0, p);
}

// a[0][v] = a[0][v] + a[1][v] + ... in chain order.
template <typename E, int U, int K>
inline void join_chains(E (&a)[U][K]) {
  for (int u = 1; u < U; ++u)
    for (int v = 0; v < K; ++v) a[0][v] += a[u][v];
}

// Adds, per channel, the sums of (z - shift) and of its square over the `pixels` pixels of z
// (pixels x C): partial sums in T over the pixels, then double accumulators.
template <typename T>
void add_row_moments(const T* z, int64_t pixels, int64_t C, const T* shift, double* sum,
                     double* sum_squares) {
  for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
    DATANAS_BLOCK_TYPES(blk);
    constexpr int U = kSumChains<K>;
    E s[U][K], q[U][K], sh[K];
    clear(&s[0][0], U * K);
    clear(&q[0][0], U * K);
    for (int v = 0; v < K; ++v) sh[v] = load<E>(shift + c0 + v * L);
    const auto add = [&](int u, int64_t p) {
      for (int v = 0; v < K; ++v) {
        const E d = load<E>(z + p * C + c0 + v * L) - sh[v];
        s[u][v] += d;
        q[u][v] += d * d;
      }
    };
    over_pixels_in_chains<U>(pixels, add);
    join_chains(s);
    join_chains(q);
    add_lanes<E, T>(s[0], K, sum + c0);
    add_lanes<E, T>(q[0], K, sum_squares + c0);
  });
}

// Adds, per channel, the sums of g and of g * (x - mean) over `pixels` pixels of x and g
// (pixels x C each).
template <typename T>
void add_row_grad_moments(const T* x, const T* g, int64_t pixels, int64_t C, const T* mean,
                          double* sum_g, double* sum_gx) {
  for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
    DATANAS_BLOCK_TYPES(blk);
    constexpr int U = kSumChains<K>;
    E s[U][K], q[U][K], m[K];
    clear(&s[0][0], U * K);
    clear(&q[0][0], U * K);
    for (int v = 0; v < K; ++v) m[v] = load<E>(mean + c0 + v * L);
    const auto add = [&](int u, int64_t p) {
      for (int v = 0; v < K; ++v) {
        const E gv = load<E>(g + p * C + c0 + v * L);
        s[u][v] += gv;
        q[u][v] += gv * (load<E>(x + p * C + c0 + v * L) - m[v]);
      }
    };
    over_pixels_in_chains<U>(pixels, add);
    join_chains(s);
    join_chains(q);
    add_lanes<E, T>(s[0], K, sum_g + c0);
    add_lanes<E, T>(q[0], K, sum_gx + c0);
  });
}

// Batch-norm sums in blocks of kMomentBlock pixels: a block sums in T (vectors), then joins the
// per-channel double sums, so the double work is per block rather than per value.
constexpr int64_t kMomentBlock = 32;

template <typename T>
void moments(const T* x, int64_t C, int64_t begin, int64_t end, const T* shift, double* sum,
             double* sum_squares) {
  for (int64_t b = begin; b < end; b += kMomentBlock) {
    const int64_t pixels = end - b < kMomentBlock ? end - b : kMomentBlock;
    add_row_moments(x + b * C, pixels, C, shift, sum, sum_squares);
  }
}

// The per-pixel maps below hold their per-channel vectors in registers for a run of
// kMapRun pixels (one channel block after another within the run, which stays in L1): the plain
// loop over C reloaded them for every pixel and, at 16 channels, re-checked its pointers for
// overlap every pixel.
constexpr int64_t kMapRun = 64;

// f(blk, c0, p0, p1) for every channel block of C and run [p0, p1) of [begin, end).
template <typename T, typename F>
inline void for_runs_of_pixels(int64_t C, int64_t begin, int64_t end, const F& f) {
  for (int64_t p0 = begin; p0 < end; p0 += kMapRun) {
    const int64_t p1 = end - p0 < kMapRun ? end : p0 + kMapRun;
    for_channel_blocks<T>(C, [&](auto blk, int64_t c0) { f(blk, c0, p0, p1); });
  }
}

template <typename T>
void scale_shift(const T* x, T* y, int64_t C, int64_t begin, int64_t end, const T* scale,
                 const T* offset) {
  for_runs_of_pixels<T>(C, begin, end, [&](auto blk, int64_t c0, int64_t p0, int64_t p1) {
    DATANAS_BLOCK_TYPES(blk);
    E s[K], o[K];
    for (int v = 0; v < K; ++v) s[v] = load<E>(scale + c0 + v * L);
    for (int v = 0; v < K; ++v) o[v] = load<E>(offset + c0 + v * L);
    for (int64_t p = p0; p < p1; ++p)
      for (int v = 0; v < K; ++v) {
        const int64_t at = p * C + c0 + v * L;
        store(y + at, load<E>(x + at) * s[v] + o[v]);
      }
  });
}

template <typename T>
void grad_moments(const T* x, const T* gy, int64_t C, int64_t begin, int64_t end, const T* mean,
                  double* sum_gy, double* sum_gy_xc) {
  for (int64_t b = begin; b < end; b += kMomentBlock) {
    const int64_t pixels = end - b < kMomentBlock ? end - b : kMomentBlock;
    add_row_grad_moments(x + b * C, gy + b * C, pixels, C, mean, sum_gy, sum_gy_xc);
  }
}

template <typename T>
void normalize_backward(const T* x, const T* gy, T* gx, int64_t C, int64_t begin, int64_t end,
                        const T* a, const T* b, const T* c0) {
  for_runs_of_pixels<T>(C, begin, end, [&](auto blk, int64_t ch, int64_t p0, int64_t p1) {
    DATANAS_BLOCK_TYPES(blk);
    E av[K], bv[K], cv[K];
    for (int v = 0; v < K; ++v) av[v] = load<E>(a + ch + v * L);
    for (int v = 0; v < K; ++v) bv[v] = load<E>(b + ch + v * L);
    for (int v = 0; v < K; ++v) cv[v] = load<E>(c0 + ch + v * L);
    for (int64_t p = p0; p < p1; ++p)
      for (int v = 0; v < K; ++v) {
        const int64_t at = p * C + ch + v * L;
        store(gx + at, av[v] * load<E>(gy + at) + bv[v] * load<E>(x + at) + cv[v]);
      }
  });
}

}  // namespace
}  // namespace nhwc
}  // namespace kernels
}  // namespace datanas
