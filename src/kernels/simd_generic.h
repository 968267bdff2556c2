// Vector helpers of the generic kernels (nhwc_kernels_generic.h, flat_kernels_generic.h): GCC/Clang
// vector extensions, so a file built with -mavx2 -mfma gets ymm registers and FMA and the
// portable one whatever its target has. Internal linkage, no standard-library templates: the
// AVX2 copy can never be merged into code that runs on other CPUs.
#pragma once
#include <cstdint>

namespace datanas {
namespace kernels {
namespace simd {
namespace {

// The target's vector width: 64 bytes where AVX-512 is on (the AVX-512 file), 32 where AVX is
// (the AVX2 file), else 16 (SSE2, NEON).
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;
#endif

template <typename T>
struct Simd {
  typedef T Vec __attribute__((vector_size(kVectorBytes)));
  static constexpr int lanes = kVectorBytes / sizeof(T);
  // Half as wide: a channel remainder of 8 floats under AVX-512 still fills a vector.
  typedef T HalfVec __attribute__((vector_size(kVectorBytes / 2)));
};

// K elements of type E (a vector or the scalar T) cover `width` channels.
template <typename E, int K, int Lanes>
struct Block {
  using Elem = E;
  static constexpr int count = K;
  static constexpr int lanes = Lanes;
  static constexpr int width = K * Lanes;
};

// E, K and L of a channel block `blk` inside a for_channel_blocks lambda.
#define DATANAS_BLOCK_TYPES(blk)          \
  using E = typename decltype(blk)::Elem; \
  constexpr int K = decltype(blk)::count; \
  constexpr int L = decltype(blk)::lanes

// Unaligned vector access as a plain load/store of a type with T's alignment (GCC and Clang let
// a typedef lower alignment). A __builtin_memcpy here let GCC turn store loops over spilled
// accumulators into 16-byte copy loops.
template <typename E, typename T>
inline E load(const T* p) {
  typedef E Unaligned __attribute__((aligned(alignof(T)), may_alias));
  return *reinterpret_cast<const Unaligned*>(p);
}

template <typename E, typename T>
inline void store(T* p, const E& v) {
  typedef E Unaligned __attribute__((aligned(alignof(T)), may_alias));
  *reinterpret_cast<Unaligned*>(p) = v;
}

// store(p, v) past the caches where the target has such a store (AVX, a p aligned to the vector's
// size): for outputs too large to stay in cache, it saves reading each line in before
// overwriting it. The caller ends a run of them with stream_fence().
template <typename E, typename T>
inline void stream_store(T* p, const E& v) {
#if defined(__AVX512F__)
  if constexpr (sizeof(E) == 64) {
    if ((reinterpret_cast<uintptr_t>(p) & 63) == 0) {
      if constexpr (sizeof(T) == 4) {
        __builtin_ia32_movntps512(reinterpret_cast<float*>(p), v);
      } else {
        __builtin_ia32_movntpd512(reinterpret_cast<double*>(p), v);
      }
      return;
    }
  }
#endif
#if defined(__AVX__)
  if constexpr (sizeof(E) == 32) {
    if ((reinterpret_cast<uintptr_t>(p) & 31) == 0) {
      if constexpr (sizeof(T) == 4) {
        __builtin_ia32_movntps256(reinterpret_cast<float*>(p), v);
      } else {
        __builtin_ia32_movntpd256(reinterpret_cast<double*>(p), v);
      }
      return;
    }
  }
#endif
  store(p, v);
}

// Orders the streamed stores before whatever follows (another thread may read them next).
inline void stream_fence() {
#if defined(__AVX__)
  __builtin_ia32_sfence();
#endif
}

// s in every lane (s - 0 folds to s exactly, unlike 0 + s, which is wrong for s = -0).
template <typename E, typename T>
inline E splat(T s) {
  return s - E{};
}

// Asks for the cache lines of [p, p + count) ahead of their use. The per-sample kernels read a
// sample's rows in short runs between compute, which the hardware prefetcher follows late:
// padding 64 samples of 32x32x16 from memory on one core took 1.3-1.5x longer without asking
// for the rows two ahead (measured).
template <typename T>
inline void prefetch_lines(const T* p, int64_t count) {
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  for (int64_t e = 0; e < count; e += kLine) __builtin_prefetch(p + e);
}

// How many rows ahead of its use the per-sample kernels ask for a row of their input.
constexpr int64_t kPrefetchRows = 2;

// Keeps v in a register from here on. GCC otherwise folds the load that made v into every
// FMA that reads it, as a memory operand: a value read by several FMAs is then loaded once per
// FMA, and kernels that reuse each input (the depthwise rows) become bound by loads.
template <typename E>
inline void hold_in_register(E& v) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+v"(v));
#endif
}

// Zeroes n accumulators one by one: `E a[n] = {}` makes GCC clear a stack copy with rep stos.
template <typename E>
inline void clear(E* a, int n) {
  for (int i = 0; i < n; ++i) a[i] = E{};
}

// max(v, 0) with a NaN kept, as LibTorch's relu does (a NaN input must reach the loss).
template <typename E>
inline E relu_of(E v) {
  const E zero{};
  return v < zero ? zero : v;
}

// out[e] += the e-th lane of a[0..n) as a double, e < n * lanes.
template <typename E, typename T>
inline void add_lanes(const E* a, int n, double* out) {
  constexpr int L = sizeof(E) / sizeof(T);
  for (int v = 0; v < n; ++v) {
    T lanes[L];
    store(lanes, a[v]);
    for (int e = 0; e < L; ++e) out[v * L + e] += static_cast<double>(lanes[e]);
  }
}

// f(Block, c0) for channel blocks [c0, c0 + Block::width) covering [0, C).
template <typename T, typename F>
inline void for_channel_blocks(int64_t C, const F& f) {
  using V = typename Simd<T>::Vec;
  constexpr int L = Simd<T>::lanes;
  int64_t c0 = 0;
  for (; c0 + 2 * L <= C; c0 += 2 * L) f(Block<V, 2, L>{}, c0);
  for (; c0 + L <= C; c0 += L) f(Block<V, 1, L>{}, c0);
  if constexpr (kVectorBytes == 64) {
    using H = typename Simd<T>::HalfVec;
    for (; c0 + L / 2 <= C; c0 += L / 2) f(Block<H, 1, L / 2>{}, c0);
  }
  for (; c0 < C; ++c0) f(Block<T, 1, 1>{}, c0);
}

}  // namespace
}  // namespace simd
}  // namespace kernels
}  // namespace datanas
