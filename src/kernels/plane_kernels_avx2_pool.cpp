// AVX2 + FMA float kernels: pooling, batch-norm pieces and the pointwise weight gradient. Built
// and dispatched like plane_kernels_avx2.cpp.
#include "kernels/avx2_common.h"

namespace datanas {
namespace kernels {
namespace {

// Tail-safe row helpers: out[c] = op(a[c], b[c], c2[c]) over n columns.
template <typename Op, typename Scalar>
void rows3(const float* a, const float* b, const float* c, float* out, int64_t n, Op op,
           Scalar scalar) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(
        out + i, op(op(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)), _mm256_loadu_ps(c + i)));
  for (; i < n; ++i) out[i] = scalar(scalar(a[i], b[i]), c[i]);
}

// Maxima that keep a NaN of either operand (_mm256_max_ps alone returns b when a is NaN).
inline __m256 vmax(__m256 a, __m256 b) {
  return _mm256_blendv_ps(_mm256_max_ps(a, b), a, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
}
inline __m256 vadd(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
inline float smax(float a, float b) { return (b > a || b != b) ? b : a; }
inline float sadd(float a, float b) { return a + b; }

// Vertical max of the three padded rows of output row oh (stride 1), then horizontal max.
void max_row_s1(const float* P, int64_t Wp, int64_t oh, int64_t Wo, float* V, float* y) {
  const float* r = P + oh * Wp;
  rows3(r, r + Wp, r + 2 * Wp, V, Wp, vmax, smax);
  rows3(V, V + 1, V + 2, y, Wo, vmax, smax);
}

void max_pool_forward_avx2(const float* x, float* y, const PoolGeometry& g, float* scratch) {
  if (g.stride != 1) return max_pool_forward(x, y, g, scratch);
  const int64_t Hp = g.height + 2, Wp = g.width + 2;
  float* V = scratch + Hp * Wp;
  pad_plane(x, g.height, g.width, 1, negative_infinity<float>(), false, scratch);
  for (int64_t oh = 0; oh < g.out_height; ++oh)
    max_row_s1(scratch, Wp, oh, g.out_width, V, y + oh * g.out_width);
}

// Stride 2 on even/odd column halves: tap (i, j) of output column ow is column ow of the even
// half (j = 0), of the odd half (j = 1) or column ow + 1 of the even half (j = 2). The first
// maximum of each window takes gy, added into split accumulators, then interleaved into gx.
void max_pool_backward_s2(const float* x, const float* gy, float* gx, const PoolGeometry& g,
                          float* scratch) {
  const int64_t H = g.height, W = g.width, Hp = H + 2, pitch = (W + 3) / 2;
  const int64_t Ho = g.out_height, Wo = g.out_width;
  float* even = scratch;
  float* odd = even + Hp * pitch;
  float* gin_even = odd + Hp * pitch;
  float* gin_odd = gin_even + Hp * pitch;
  pad_split(x, H, W, 1, false, even, odd, pitch, negative_infinity<float>());
  for (int64_t e = 0; e < Hp * pitch; ++e) gin_even[e] = gin_odd[e] = 0.0f;
  const __m256i tail = lane_mask(Wo % 8);
  for (int64_t oh = 0; oh < Ho; ++oh) {
    for (int64_t ow = 0; ow < Wo; ow += 8) {
      const bool full = ow + 8 <= Wo;
      auto load = [&](const float* at) {
        return full ? _mm256_loadu_ps(at) : _mm256_maskload_ps(at, tail);
      };
      __m256 v[9];
      for (int i = 0; i < 3; ++i) {
        const int64_t row = (2 * oh + i) * pitch + ow;
        v[3 * i] = load(even + row);
        v[3 * i + 1] = load(odd + row);
        v[3 * i + 2] = load(even + row + 1);
      }
      __m256 m = v[0];
      for (int t = 1; t < 9; ++t) m = _mm256_max_ps(m, v[t]);
      const __m256 gv = load(gy + oh * Wo + ow);
      __m256 taken = _mm256_setzero_ps();
      for (int t = 0; t < 9; ++t) {
        const __m256 first = _mm256_andnot_ps(taken, _mm256_cmp_ps(v[t], m, _CMP_EQ_OQ));
        taken = _mm256_or_ps(taken, first);
        const int64_t row = (2 * oh + t / 3) * pitch + ow;
        float* dst = t % 3 == 1 ? gin_odd + row : gin_even + row + (t % 3 == 2 ? 1 : 0);
        const __m256 sum = _mm256_add_ps(load(dst), _mm256_and_ps(first, gv));
        if (full) {
          _mm256_storeu_ps(dst, sum);
        } else {
          _mm256_maskstore_ps(dst, tail, sum);
        }
      }
    }
  }
  for (int64_t h = 0; h < H; ++h) {
    const float* e = gin_even + (h + 1) * pitch;
    const float* o = gin_odd + (h + 1) * pitch;
    for (int64_t c = 0; c < W; ++c)
      gx[h * W + c] = ((c + 1) & 1) ? o[(c + 1) >> 1] : e[(c + 1) >> 1];
  }
}

// Stride 1, in two passes without scatter: (1) the code (0..8, row-major) of each window's first
// maximum, into a plane padded with -1, beside gy padded with 0; (2) every input gathers gy from
// the nine windows around it whose code points back at it.
void max_pool_backward_avx2(const float* x, const float* gy, float* gx, const PoolGeometry& g,
                            float* scratch) {
  if (g.stride == 2) return max_pool_backward_s2(x, gy, gx, g, scratch);
  if (g.stride != 1) return max_pool_backward(x, gy, gx, g, scratch);
  const int64_t H = g.height, W = g.width, Hp = H + 2, Wp = W + 2;
  float* P = scratch;
  float* codes = P + Hp * Wp;
  float* grads = codes + Hp * Wp;
  float* V = grads + Hp * Wp;
  float* M = V + Wp;
  pad_plane(x, H, W, 1, negative_infinity<float>(), false, P);
  pad_plane(gy, H, W, 1, 0.0f, false, grads);
  for (int64_t c = 0; c < Wp; ++c) codes[c] = codes[(H + 1) * Wp + c] = -1.0f;
  const __m256i tail = lane_mask(W % 8);
  for (int64_t oh = 0; oh < H; ++oh) {
    max_row_s1(P, Wp, oh, W, V, M);
    float* code_row = codes + (oh + 1) * Wp;
    code_row[0] = code_row[W + 1] = -1.0f;
    for (int64_t ow = 0; ow < W; ow += 8) {
      const bool full = ow + 8 <= W;
      const __m256 m = full ? _mm256_loadu_ps(M + ow) : _mm256_maskload_ps(M + ow, tail);
      __m256 code = _mm256_setzero_ps();
      for (int t = 8; t >= 0; --t) {
        const float* at = P + (oh + t / 3) * Wp + ow + t % 3;
        const __m256 v = full ? _mm256_loadu_ps(at) : _mm256_maskload_ps(at, tail);
        code = _mm256_blendv_ps(code, _mm256_set1_ps(static_cast<float>(t)),
                                _mm256_cmp_ps(v, m, _CMP_EQ_OQ));
      }
      if (full) {
        _mm256_storeu_ps(code_row + 1 + ow, code);
      } else {
        _mm256_maskstore_ps(code_row + 1 + ow, tail, code);
      }
    }
  }
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t w = 0; w < W; w += 8) {
      const bool full = w + 8 <= W;
      __m256 acc = _mm256_setzero_ps();
      for (int t = 0; t < 9; ++t) {
        // The window of output (h + 1 - i, w + 1 - j) sees this input as tap (i, j).
        const int64_t at = (h + 2 - t / 3) * Wp + w + 2 - t % 3;
        const __m256 c = full ? _mm256_loadu_ps(codes + at) : _mm256_maskload_ps(codes + at, tail);
        const __m256 gv = full ? _mm256_loadu_ps(grads + at) : _mm256_maskload_ps(grads + at, tail);
        const __m256 hit = _mm256_cmp_ps(c, _mm256_set1_ps(static_cast<float>(t)), _CMP_EQ_OQ);
        acc = _mm256_add_ps(acc, _mm256_and_ps(hit, gv));
      }
      if (full) {
        _mm256_storeu_ps(gx + h * W + w, acc);
      } else {
        _mm256_maskstore_ps(gx + h * W + w, tail, acc);
      }
    }
  }
}

// 1 / taps inside the plane for each output column (stride 1).
void column_counts(int64_t W, float* counts) {
  for (int64_t c = 0; c < W; ++c) counts[c] = static_cast<float>(taps_inside(c, 1, W));
}

// out[c] = (V[c] + V[c + 1] + V[c + 2]) / (rows * counts[c]).
void box_row(const float* V, const float* counts, float rows, float* out, int64_t n) {
  const __m256 r = _mm256_set1_ps(rows);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 sum =
        _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(V + i), _mm256_loadu_ps(V + i + 1)),
                      _mm256_loadu_ps(V + i + 2));
    _mm256_storeu_ps(out + i, _mm256_div_ps(sum, _mm256_mul_ps(r, _mm256_loadu_ps(counts + i))));
  }
  for (; i < n; ++i) out[i] = (V[i] + V[i + 1] + V[i + 2]) / (rows * counts[i]);
}

void avg_pool_forward_avx2(const float* x, float* y, const PoolGeometry& g, float* scratch) {
  if (g.stride != 1) return avg_pool_forward(x, y, g, scratch);
  const int64_t Hp = g.height + 2, Wp = g.width + 2, Wo = g.out_width;
  float* P = scratch;
  float* V = P + Hp * Wp;
  float* counts = V + Wp;
  pad_plane(x, g.height, g.width, 1, 0.0f, false, P);
  column_counts(g.width, counts);
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    const float* r = P + oh * Wp;
    rows3(r, r + Wp, r + 2 * Wp, V, Wp, vadd, sadd);
    box_row(V, counts, static_cast<float>(taps_inside(oh, 1, g.height)), y + oh * Wo, Wo);
  }
}

// Stride 1: gx is the 3x3 box sum of gy / count (padded with zeros).
void avg_pool_backward_avx2(const float* gy, float* gx, const PoolGeometry& g, float* scratch) {
  if (g.stride != 1) return avg_pool_backward(gy, gx, g, scratch);
  const int64_t H = g.height, W = g.width, Wp = W + 2;
  float* Q = scratch;
  float* V = Q + (H + 2) * Wp;
  float* counts = V + Wp;
  float* ones = counts + W + 8;
  column_counts(W, counts);
  for (int64_t c = 0; c < Wp; ++c) ones[c] = 1.0f;
  for (int64_t c = 0; c < Wp; ++c) Q[c] = Q[(H + 1) * Wp + c] = 0.0f;
  for (int64_t h = 0; h < H; ++h) {
    float* row = Q + (h + 1) * Wp;
    row[0] = row[W + 1] = 0.0f;
    const float rows = static_cast<float>(taps_inside(h, 1, H));
    const float* src = gy + h * W;
    for (int64_t c = 0; c < W; ++c) row[c + 1] = src[c] / (rows * counts[c]);
  }
  for (int64_t h = 0; h < H; ++h) {
    const float* r = Q + h * Wp;
    rows3(r, r + Wp, r + 2 * Wp, V, Wp, vadd, sadd);
    box_row(V, ones, 1.0f, gx + h * W, W);
  }
}

// Batch-norm pieces: float lanes over blocks of 512, summed into double per block.
constexpr int64_t kBlock = 512;

void moments_avx2(const float* x, int64_t n, float shift, double* sum, double* sum_squares) {
  double s = 0, ss = 0;
  const __m256 sh = _mm256_set1_ps(shift);
  int64_t e = 0;
  for (; e + 8 <= n;) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    const int64_t stop = e + kBlock < n ? e + kBlock : n;
    for (; e + 8 <= stop; e += 8) {
      const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + e), sh);
      a = _mm256_add_ps(a, v);
      b = _mm256_fmadd_ps(v, v, b);
    }
    s += horizontal_sum(a);
    ss += horizontal_sum(b);
  }
  for (; e < n; ++e) {
    const double v = static_cast<double>(x[e]) - shift;
    s += v;
    ss += v * v;
  }
  *sum = s;
  *sum_squares = ss;
}

void scale_shift_avx2(const float* x, float* y, int64_t n, float scale, float offset) {
  const __m256 a = _mm256_set1_ps(scale), b = _mm256_set1_ps(offset);
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) _mm256_storeu_ps(y + e, _mm256_fmadd_ps(_mm256_loadu_ps(x + e), a, b));
  for (; e < n; ++e) y[e] = x[e] * scale + offset;
}

void grad_moments_avx2(const float* x, const float* gy, int64_t n, float mean, double* sum_gy,
                       double* sum_gy_xc) {
  double s = 0, sx = 0;
  const __m256 m = _mm256_set1_ps(mean);
  int64_t e = 0;
  for (; e + 8 <= n;) {
    __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
    const int64_t stop = e + kBlock < n ? e + kBlock : n;
    for (; e + 8 <= stop; e += 8) {
      const __m256 g = _mm256_loadu_ps(gy + e);
      a = _mm256_add_ps(a, g);
      b = _mm256_fmadd_ps(g, _mm256_sub_ps(_mm256_loadu_ps(x + e), m), b);
    }
    s += horizontal_sum(a);
    sx += horizontal_sum(b);
  }
  for (; e < n; ++e) {
    s += gy[e];
    sx += static_cast<double>(gy[e]) * (static_cast<double>(x[e]) - mean);
  }
  *sum_gy = s;
  *sum_gy_xc = sx;
}

void normalize_backward_avx2(const float* x, const float* gy, float* gx, int64_t n, float a,
                             float b, float c) {
  const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), vc = _mm256_set1_ps(c);
  int64_t e = 0;
  for (; e + 8 <= n; e += 8) {
    const __m256 t = _mm256_fmadd_ps(_mm256_loadu_ps(x + e), vb, vc);
    _mm256_storeu_ps(gx + e, _mm256_fmadd_ps(_mm256_loadu_ps(gy + e), va, t));
  }
  for (; e < n; ++e) gx[e] = a * gy[e] + b * x[e] + c;
}

void pointwise_wgrad_avx2(const float* x, const float* gy, float* gw, int64_t inputs,
                          int64_t outputs, int64_t pixels, int64_t begin, int64_t end) {
  const __m256i tail = lane_mask((end - begin) % 8);
  for (int64_t o = 0; o < outputs; ++o) {
    const float* g = gy + o * pixels;
    for (int64_t i = 0; i < inputs; ++i) {
      const float* xr = x + i * pixels;
      __m256 acc = _mm256_setzero_ps();
      int64_t p = begin;
      for (; p + 8 <= end; p += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(g + p), _mm256_loadu_ps(xr + p), acc);
      if (p < end)
        acc =
            _mm256_fmadd_ps(_mm256_maskload_ps(g + p, tail), _mm256_maskload_ps(xr + p, tail), acc);
      gw[o * inputs + i] += horizontal_sum(acc);
    }
  }
}

}  // namespace

namespace avx2 {

void fill_pool_and_norm(PlaneKernels<float>& t) {
  t.max_pool_forward = max_pool_forward_avx2;
  t.max_pool_backward = max_pool_backward_avx2;
  t.avg_pool_forward = avg_pool_forward_avx2;
  t.avg_pool_backward = avg_pool_backward_avx2;
  t.moments = moments_avx2;
  t.scale_shift = scale_shift_avx2;
  t.grad_moments = grad_moments_avx2;
  t.normalize_backward = normalize_backward_avx2;
  t.pointwise_wgrad = pointwise_wgrad_avx2;
}

}  // namespace avx2
}  // namespace kernels
}  // namespace datanas
