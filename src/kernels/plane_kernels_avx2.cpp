// AVX2 + FMA float kernels: depthwise convolution. Built with -mavx2 -mfma (CMakeLists.txt) and
// called only when the CPU has both (best_kernels_f32). Includes no LibTorch and no
// standard-library templates.
#include "kernels/avx2_common.h"

namespace datanas {
namespace kernels {
namespace {

// Stride-1 correlation of the padded plane P with a K x K kernel, 16 outputs of a row at a time.
template <int K>
void conv_s1_avx2(const float* P, int64_t Wp, const float* w, int64_t d, float* y, int64_t Ho,
                  int64_t Wo) {
  const __m256i tail = lane_mask(Wo % 8);
  for (int64_t oh = 0; oh < Ho; ++oh) {
    const float* base = P + oh * Wp;
    float* yr = y + oh * Wo;
    int64_t ow = 0;
    for (; ow + 16 <= Wo; ow += 16) {
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      for (int i = 0; i < K; ++i) {
        const float* r = base + i * d * Wp + ow;
        for (int j = 0; j < K; ++j) {
          const __m256 wv = _mm256_broadcast_ss(w + i * K + j);
          a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(r + j * d), a0);
          a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(r + j * d + 8), a1);
        }
      }
      _mm256_storeu_ps(yr + ow, a0);
      _mm256_storeu_ps(yr + ow + 8, a1);
    }
    for (; ow + 8 <= Wo; ow += 8) {
      __m256 a0 = _mm256_setzero_ps();
      for (int i = 0; i < K; ++i) {
        const float* r = base + i * d * Wp + ow;
        for (int j = 0; j < K; ++j)
          a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + i * K + j), _mm256_loadu_ps(r + j * d), a0);
      }
      _mm256_storeu_ps(yr + ow, a0);
    }
    if (ow < Wo) {
      __m256 a0 = _mm256_setzero_ps();
      for (int i = 0; i < K; ++i) {
        const float* r = base + i * d * Wp + ow;
        for (int j = 0; j < K; ++j)
          a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + i * K + j),
                               _mm256_maskload_ps(r + j * d, tail), a0);
      }
      _mm256_maskstore_ps(yr + ow, tail, a0);
    }
  }
}

// gw += stride-1 weight gradient: one pass over gy per kernel row, K accumulators.
template <int K>
void wgrad_s1_avx2(const float* P, int64_t Wp, const float* gy, int64_t d, int64_t Ho, int64_t Wo,
                   float* gw) {
  const __m256i tail = lane_mask(Wo % 8);
  for (int i = 0; i < K; ++i) {
    __m256 acc[K];
    for (int j = 0; j < K; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t oh = 0; oh < Ho; ++oh) {
      const float* g = gy + oh * Wo;
      const float* r = P + (oh + i * d) * Wp;
      int64_t ow = 0;
      for (; ow + 8 <= Wo; ow += 8) {
        const __m256 gv = _mm256_loadu_ps(g + ow);
        for (int j = 0; j < K; ++j)
          acc[j] = _mm256_fmadd_ps(gv, _mm256_loadu_ps(r + ow + j * d), acc[j]);
      }
      if (ow < Wo) {
        const __m256 gv = _mm256_maskload_ps(g + ow, tail);
        for (int j = 0; j < K; ++j)
          acc[j] = _mm256_fmadd_ps(gv, _mm256_maskload_ps(r + ow + j * d, tail), acc[j]);
      }
    }
    for (int j = 0; j < K; ++j) gw[i * K + j] += horizontal_sum(acc[j]);
  }
}

template <int K>
void conv_s2_avx2(const float* even, const float* odd, int64_t pitch, const float* w, int64_t d,
                  float* y, int64_t Ho, int64_t Wo) {
  const __m256i tail = lane_mask(Wo % 8);
  for (int64_t oh = 0; oh < Ho; ++oh) {
    float* yr = y + oh * Wo;
    for (int64_t ow = 0; ow < Wo; ow += 8) {
      const bool full = ow + 8 <= Wo;
      __m256 acc = _mm256_setzero_ps();
      for (int i = 0; i < K; ++i) {
        const int64_t row = (2 * oh + i * d) * pitch + ow;
        for (int j = 0; j < K; ++j) {
          const float* src = phase(even + row, odd + row, j * d);
          const __m256 v = full ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, tail);
          acc = _mm256_fmadd_ps(_mm256_broadcast_ss(w + i * K + j), v, acc);
        }
      }
      if (full) {
        _mm256_storeu_ps(yr + ow, acc);
      } else {
        _mm256_maskstore_ps(yr + ow, tail, acc);
      }
    }
  }
}

template <int K>
void wgrad_s2_avx2(const float* even, const float* odd, int64_t pitch, const float* gy, int64_t d,
                   int64_t Ho, int64_t Wo, float* gw) {
  const __m256i tail = lane_mask(Wo % 8);
  for (int i = 0; i < K; ++i) {
    __m256 acc[K];
    for (int j = 0; j < K; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t oh = 0; oh < Ho; ++oh) {
      const int64_t row = (2 * oh + i * d) * pitch;
      for (int64_t ow = 0; ow < Wo; ow += 8) {
        const bool full = ow + 8 <= Wo;
        const float* g = gy + oh * Wo + ow;
        const __m256 gv = full ? _mm256_loadu_ps(g) : _mm256_maskload_ps(g, tail);
        for (int j = 0; j < K; ++j) {
          const float* src = phase(even + row + ow, odd + row + ow, j * d);
          const __m256 v = full ? _mm256_loadu_ps(src) : _mm256_maskload_ps(src, tail);
          acc[j] = _mm256_fmadd_ps(gv, v, acc[j]);
        }
      }
    }
    for (int j = 0; j < K; ++j) gw[i * K + j] += horizontal_sum(acc[j]);
  }
}

// The transposed conv into split accumulators, then interleaved and cropped into gx.
template <int K>
void input_grad_s2_avx2(const float* gy, const float* w, int64_t d, int64_t Ho, int64_t Wo,
                        float* even, float* odd, int64_t pitch, int64_t Hp) {
  for (int64_t e = 0; e < Hp * pitch; ++e) even[e] = odd[e] = 0.0f;
  const __m256i tail = lane_mask(Wo % 8);
  for (int64_t oh = 0; oh < Ho; ++oh) {
    for (int64_t ow = 0; ow < Wo; ow += 8) {
      const bool full = ow + 8 <= Wo;
      const float* g = gy + oh * Wo + ow;
      const __m256 gv = full ? _mm256_loadu_ps(g) : _mm256_maskload_ps(g, tail);
      for (int i = 0; i < K; ++i) {
        const int64_t row = (2 * oh + i * d) * pitch + ow;
        for (int j = 0; j < K; ++j) {
          float* dst = const_cast<float*>(phase(even + row, odd + row, j * d));
          const __m256 add = _mm256_mul_ps(_mm256_broadcast_ss(w + i * K + j), gv);
          if (full) {
            _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), add));
          } else {
            _mm256_maskstore_ps(dst, tail, _mm256_add_ps(_mm256_maskload_ps(dst, tail), add));
          }
        }
      }
    }
  }
}

template <int K>
void conv_forward_s2(const float* x, const float* w, float* y, const ConvGeometry& g, bool relu,
                     float* scratch) {
  const int64_t Hp = g.height + 2 * g.padding, pitch = (g.width + 2 * g.padding + 1) / 2;
  float* even = scratch;
  float* odd = scratch + Hp * pitch;
  pad_split(x, g.height, g.width, g.padding, relu, even, odd, pitch);
  conv_s2_avx2<K>(even, odd, pitch, w, g.dilation, y, g.out_height, g.out_width);
}

template <int K>
void conv_backward_s2(const float* x, const float* w, const float* gy, float* gx, float* gw,
                      const ConvGeometry& g, bool relu, float* scratch) {
  const int64_t p = g.padding, Hp = g.height + 2 * p, pitch = (g.width + 2 * p + 1) / 2;
  float* even = scratch;
  float* odd = scratch + Hp * pitch;
  if (gw) {
    pad_split(x, g.height, g.width, p, relu, even, odd, pitch);
    wgrad_s2_avx2<K>(even, odd, pitch, gy, g.dilation, g.out_height, g.out_width, gw);
  }
  input_grad_s2_avx2<K>(gy, w, g.dilation, g.out_height, g.out_width, even, odd, pitch, Hp);
  for (int64_t h = 0; h < g.height; ++h) {
    const float* e = even + (h + p) * pitch;
    const float* o = odd + (h + p) * pitch;
    const float* xr = x + h * g.width;
    float* out = gx + h * g.width;
    for (int64_t c = 0; c < g.width; ++c) {
      const int64_t col = c + p;
      const float v = (col & 1) ? o[col >> 1] : e[col >> 1];
      out[c] = !relu || xr[c] > 0.0f ? v : 0.0f;
    }
  }
}

void conv_forward_avx2(const float* x, const float* w, float* y, const ConvGeometry& g, bool relu,
                       float* scratch);
void conv_backward_avx2(const float* x, const float* w, const float* gy, float* gx, float* gw,
                        const ConvGeometry& g, bool relu, float* scratch);

struct Avx2Inner {
  static void conv_s1(const float* P, int64_t Wp, const float* w, int64_t k, int64_t d, float* y,
                      int64_t Ho, int64_t Wo) {
    if (k == 3) return conv_s1_avx2<3>(P, Wp, w, d, y, Ho, Wo);
    if (k == 5) return conv_s1_avx2<5>(P, Wp, w, d, y, Ho, Wo);
    conv_padded(P, Wp, w, k, 1, d, y, Ho, Wo);
  }
  static void wgrad_s1(const float* P, int64_t Wp, const float* gy, int64_t k, int64_t d,
                       int64_t Ho, int64_t Wo, float* gw) {
    if (k == 3) return wgrad_s1_avx2<3>(P, Wp, gy, d, Ho, Wo, gw);
    if (k == 5) return wgrad_s1_avx2<5>(P, Wp, gy, d, Ho, Wo, gw);
    wgrad_padded(P, Wp, gy, k, 1, d, Ho, Wo, gw);
  }
};

void conv_forward_avx2(const float* x, const float* w, float* y, const ConvGeometry& g, bool relu,
                       float* scratch) {
  if (g.stride == 2 && g.kernel == 3) return conv_forward_s2<3>(x, w, y, g, relu, scratch);
  if (g.stride == 2 && g.kernel == 5) return conv_forward_s2<5>(x, w, y, g, relu, scratch);
  conv_forward<float, Avx2Inner>(x, w, y, g, relu, scratch);
}

void conv_backward_avx2(const float* x, const float* w, const float* gy, float* gx, float* gw,
                        const ConvGeometry& g, bool relu, float* scratch) {
  if (g.stride == 2 && g.kernel == 3)
    return conv_backward_s2<3>(x, w, gy, gx, gw, g, relu, scratch);
  if (g.stride == 2 && g.kernel == 5)
    return conv_backward_s2<5>(x, w, gy, gx, gw, g, relu, scratch);
  conv_backward<float, Avx2Inner>(x, w, gy, gx, gw, g, relu, scratch);
}

PlaneKernels<float> avx2_table() {
  PlaneKernels<float> t = generic_table<float>();
  t.conv_forward = conv_forward_avx2;
  t.conv_backward = conv_backward_avx2;
  avx2::fill_pool_and_norm(t);
  return t;
}

}  // namespace

namespace avx2 {

const PlaneKernels<float>& kernels_f32() {
  static const PlaneKernels<float> table = avx2_table();
  return table;
}

}  // namespace avx2
}  // namespace kernels
}  // namespace datanas
