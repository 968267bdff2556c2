// Helpers shared by the AVX2 kernel files (plane_kernels_avx2*.cpp, built with -mavx2 -mfma).
// Internal linkage only; include nothing else from here.
#pragma once
#include <immintrin.h>

#include "kernels/plane_kernels_generic.h"

namespace datanas {
namespace kernels {
namespace {

// Lanes 0..count-1 on.
inline __m256i lane_mask(int64_t count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline float horizontal_sum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Stride 2: the padded plane is split into its even and odd columns (row pitch `pitch` each), so
// tap column 2 * ow + j * d is column ow + (j * d) / 2 of one of them: contiguous in ow again.
void pad_split(const float* x, int64_t H, int64_t W, int64_t p, bool relu, float* even, float* odd,
               int64_t pitch, float fill = 0.0f) {
  for (int64_t r = 0; r < H + 2 * p; ++r) {
    float* e = even + r * pitch;
    float* o = odd + r * pitch;
    for (int64_t c = 0; c < pitch; ++c) e[c] = o[c] = fill;
    if (r < p || r >= H + p) continue;
    const float* src = x + (r - p) * W;
    for (int64_t c = 0; c < W; ++c) {
      const float v = relu ? relu_value(src[c]) : src[c];
      const int64_t col = c + p;
      ((col & 1) ? o : e)[col >> 1] = v;
    }
  }
}

inline const float* phase(const float* even, const float* odd, int64_t offset) {
  return (offset & 1) ? odd + (offset >> 1) : even + (offset >> 1);
}

}  // namespace

namespace avx2 {
// Sets the pooling, batch-norm and pointwise entries of `table` (plane_kernels_avx2_pool.cpp).
void fill_pool_and_norm(PlaneKernels<float>& table);
}  // namespace avx2

}  // namespace kernels
}  // namespace datanas
