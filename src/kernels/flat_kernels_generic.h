// The flat kernels of flat_kernels.h, included by the portable and the AVX2 kernel files (each
// gets its own copy, internal linkage).
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/flat_kernels.h"
#include "kernels/simd_generic.h"

namespace datanas {
namespace kernels {
namespace flat {
namespace {
using namespace simd;

template <typename T>
void weighted_sum(const T* const* values, const T* w, int count, T* y, int64_t begin, int64_t end) {
  using V = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::lanes;
  V wv[kMaxWeightedTerms];
  for (int k = 0; k < count; ++k) wv[k] = splat<V>(w[k]);
  int64_t e = begin;
  for (; e + L <= end; e += L) {
    V acc = wv[0] * load<V>(values[0] + e);
    for (int k = 1; k < count; ++k) acc += wv[k] * load<V>(values[k] + e);
    store(y + e, acc);
  }
  for (; e < end; ++e) {
    T acc = w[0] * values[0][e];
    for (int k = 1; k < count; ++k) acc += w[k] * values[k][e];
    y[e] = acc;
  }
}

// The pixels are the outer loop inside each channel block: a block's maps stay in L1 while the
// values stream past. Each term is rounded as weighted_sum rounds w[k] times a value that a
// batch-norm pass (scale_shift) made first.
template <typename T>
void channel_weighted_sum(const T* const* values, const T* w, const T* scales, const T* offsets,
                          int count, int64_t C, T* y, int64_t begin, int64_t end) {
  for_channel_blocks<T>(C, [&](auto blk, int64_t c0) {
    DATANAS_BLOCK_TYPES(blk);
    for (int64_t e = begin + c0; e < end; e += C) {
      for (int v = 0; v < K; ++v) {
        const int64_t c = c0 + v * L;
        E acc{};
        for (int k = 0; k < count; ++k) {
          const E value = load<E>(values[k] + e + v * L) * load<E>(scales + k * C + c) +
                          load<E>(offsets + k * C + c);
          acc = k == 0 ? splat<E>(w[k]) * value : acc + splat<E>(w[k]) * value;
        }
        store(y + e + v * L, acc);
      }
    }
  });
}

template <typename T>
void dots(const T* const* values, int count, const T* g, double* out, int64_t begin, int64_t end) {
  using V = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::lanes;
  V acc[kMaxWeightedTerms];
  clear(acc, count);
  int64_t e = begin;
  for (; e + L <= end; e += L) {
    const V gv = load<V>(g + e);
    for (int k = 0; k < count; ++k) acc[k] += load<V>(values[k] + e) * gv;
  }
  for (int k = 0; k < count; ++k) {
    double sum = 0.0;
    for (int lane = 0; lane < L; ++lane) sum += static_cast<double>(acc[k][lane]);
    for (int64_t t = e; t < end; ++t) sum += static_cast<double>(values[k][t] * g[t]);
    out[k] += sum;
  }
}

template <typename T>
void scaled_copies(const T* g, const T* w, int count, T* const* out, int64_t begin, int64_t end) {
  using V = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::lanes;
  for (int k = 0; k < count; ++k) {
    const V wv = splat<V>(w[k]);
    T* o = out[k];
    int64_t e = begin;
    for (; e + L <= end; e += L) store(o + e, wv * load<V>(g + e));
    for (; e < end; ++e) o[e] = w[k] * g[e];
  }
}

// a * b + c as LibTorch's vector kernels compute it: fused where this file is built for FMA.
template <typename T>
T scaled_add(T a, T b, T c) {
#ifdef __FMA__
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

template <typename T>
void sgd_update(T* p, const T* g, T* buf, int64_t begin, int64_t end, const SgdCoefficients<T>& c) {
  for (int64_t e = begin; e < end; ++e) {
    T d = c.decay ? scaled_add(c.weight_decay, p[e], g[e]) : g[e];
    if (c.with_momentum) {
      // The product is rounded before the add, as LibTorch's mul_ then add_ do.
      const T b = c.fresh ? d : scaled_add(c.keep, d, static_cast<T>(buf[e] * c.momentum));
      buf[e] = b;
      d = c.nesterov ? scaled_add(c.momentum, b, d) : b;
    }
    p[e] = scaled_add(c.step, d, p[e]);
  }
}

template <typename T>
FlatKernels<T> generic_flat_table() {
  FlatKernels<T> t;
  t.weighted_sum = weighted_sum<T>;
  t.channel_weighted_sum = channel_weighted_sum<T>;
  t.dots = dots<T>;
  t.scaled_copies = scaled_copies<T>;
  t.sgd_update = sgd_update<T>;
  return t;
}

}  // namespace
}  // namespace flat
}  // namespace kernels
}  // namespace datanas
