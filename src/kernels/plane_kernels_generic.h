// Plain-loop plane kernels, included by plane_kernels_portable.cpp and plane_kernels_avx2.cpp
// (each gets its own copy: everything here has internal linkage). The AVX2 file passes its own
// `Inner` with vectorised stride-1 loops; the portable one uses GenericInner.
#pragma once
#include <cstdint>

#include "kernels/plane_kernels.h"

namespace datanas {
namespace kernels {
namespace {

constexpr int64_t kMaxKernel = 7;

template <typename T>
inline T relu_value(T v) {
  return v < T(0) ? T(0) : v;  // a NaN stays NaN, as in LibTorch's relu
}

// Copies the H x W plane `x` into `out` ((H + 2p) x (W + 2p)) with a border of `fill`.
template <typename T>
void pad_plane(const T* x, int64_t H, int64_t W, int64_t p, T fill, bool relu, T* out) {
  const int64_t Wp = W + 2 * p;
  for (int64_t r = 0; r < H + 2 * p; ++r) {
    T* row = out + r * Wp;
    if (r < p || r >= H + p) {
      for (int64_t c = 0; c < Wp; ++c) row[c] = fill;
      continue;
    }
    for (int64_t c = 0; c < p; ++c) row[c] = fill;
    const T* src = x + (r - p) * W;
    T* dst = row + p;
    if (relu) {
      for (int64_t c = 0; c < W; ++c) dst[c] = relu_value(src[c]);
    } else {
      for (int64_t c = 0; c < W; ++c) dst[c] = src[c];
    }
    for (int64_t c = W + p; c < Wp; ++c) row[c] = fill;
  }
}

// y (Ho x Wo) = stride-s, dilation-d correlation of the padded plane P (row pitch Wp) with w.
template <typename T>
void conv_padded(const T* P, int64_t Wp, const T* w, int64_t k, int64_t s, int64_t d, T* y,
                 int64_t Ho, int64_t Wo) {
  for (int64_t oh = 0; oh < Ho; ++oh) {
    T* yr = y + oh * Wo;
    for (int64_t ow = 0; ow < Wo; ++ow) yr[ow] = T(0);
    for (int64_t i = 0; i < k; ++i) {
      const T* pr = P + (oh * s + i * d) * Wp;
      for (int64_t j = 0; j < k; ++j) {
        const T wv = w[i * k + j];
        const T* src = pr + j * d;
        for (int64_t ow = 0; ow < Wo; ++ow) yr[ow] += wv * src[ow * s];
      }
    }
  }
}

// gw[i, j] += sum over outputs of gy * the input tap it multiplied.
template <typename T>
void wgrad_padded(const T* P, int64_t Wp, const T* gy, int64_t k, int64_t s, int64_t d, int64_t Ho,
                  int64_t Wo, T* gw) {
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      T acc = T(0);
      for (int64_t oh = 0; oh < Ho; ++oh) {
        const T* src = P + (oh * s + i * d) * Wp + j * d;
        const T* g = gy + oh * Wo;
        for (int64_t ow = 0; ow < Wo; ++ow) acc += g[ow] * src[ow * s];
      }
      gw[i * k + j] += acc;
    }
  }
}

// G (Hp x Wp, padded input coordinates) = transposed convolution of gy: every output scatters
// gy * w to the taps it read.
template <typename T>
void conv_transpose_padded(const T* gy, const T* w, int64_t k, int64_t s, int64_t d, int64_t Ho,
                           int64_t Wo, T* G, int64_t Hp, int64_t Wp) {
  for (int64_t e = 0; e < Hp * Wp; ++e) G[e] = T(0);
  for (int64_t oh = 0; oh < Ho; ++oh) {
    const T* g = gy + oh * Wo;
    for (int64_t i = 0; i < k; ++i) {
      T* gr = G + (oh * s + i * d) * Wp;
      for (int64_t j = 0; j < k; ++j) {
        const T wv = w[i * k + j];
        T* dst = gr + j * d;
        for (int64_t ow = 0; ow < Wo; ++ow) dst[ow * s] += wv * g[ow];
      }
    }
  }
}

template <typename T>
void crop_plane(const T* G, int64_t Wp, int64_t p, T* out, int64_t H, int64_t W) {
  for (int64_t h = 0; h < H; ++h) {
    const T* src = G + (h + p) * Wp + p;
    T* dst = out + h * W;
    for (int64_t c = 0; c < W; ++c) dst[c] = src[c];
  }
}

template <typename T>
struct GenericInner {
  static void conv_s1(const T* P, int64_t Wp, const T* w, int64_t k, int64_t d, T* y, int64_t Ho,
                      int64_t Wo) {
    conv_padded(P, Wp, w, k, 1, d, y, Ho, Wo);
  }
  static void wgrad_s1(const T* P, int64_t Wp, const T* gy, int64_t k, int64_t d, int64_t Ho,
                       int64_t Wo, T* gw) {
    wgrad_padded(P, Wp, gy, k, 1, d, Ho, Wo, gw);
  }
};

template <typename T, typename Inner>
void conv_forward(const T* x, const T* w, T* y, const ConvGeometry& g, bool relu, T* scratch) {
  const int64_t p = g.padding, Wp = g.width + 2 * p;
  pad_plane(x, g.height, g.width, p, T(0), relu, scratch);
  if (g.stride == 1) {
    Inner::conv_s1(scratch, Wp, w, g.kernel, g.dilation, y, g.out_height, g.out_width);
  } else {
    conv_padded(scratch, Wp, w, g.kernel, g.stride, g.dilation, y, g.out_height, g.out_width);
  }
}

template <typename T, typename Inner>
void conv_backward(const T* x, const T* w, const T* gy, T* gx, T* gw, const ConvGeometry& g,
                   bool relu, T* scratch) {
  const int64_t k = g.kernel, d = g.dilation, p = g.padding;
  const int64_t Hp = g.height + 2 * p, Wp = g.width + 2 * p;
  const int64_t Ho = g.out_height, Wo = g.out_width;
  T* P = scratch;
  T* Q = scratch + Hp * Wp;
  if (gw) {
    pad_plane(x, g.height, g.width, p, T(0), relu, P);
    if (g.stride == 1) {
      Inner::wgrad_s1(P, Wp, gy, k, d, Ho, Wo, gw);
    } else {
      wgrad_padded(P, Wp, gy, k, g.stride, d, Ho, Wo, gw);
    }
  }
  const int64_t reach = d * (k - 1);
  if (g.stride == 1 && p <= reach) {
    // At stride 1 the input gradient is a correlation of gy, padded by reach - p, with the
    // flipped kernel: the forward loop does it.
    const int64_t q = reach - p;
    pad_plane(gy, Ho, Wo, q, T(0), false, Q);
    T flipped[kMaxKernel * kMaxKernel];
    for (int64_t e = 0; e < k * k; ++e) flipped[e] = w[k * k - 1 - e];
    Inner::conv_s1(Q, Wo + 2 * q, flipped, k, d, gx, g.height, g.width);
  } else {
    conv_transpose_padded(gy, w, k, g.stride, d, Ho, Wo, Q, Hp, Wp);
    crop_plane(Q, Wp, p, gx, g.height, g.width);
  }
  if (relu) {
    const int64_t n = g.height * g.width;
    for (int64_t e = 0; e < n; ++e) gx[e] = x[e] > T(0) ? gx[e] : T(0);
  }
}

template <typename T>
inline T negative_infinity() {
  return static_cast<T>(-__builtin_inf());
}

template <typename T>
void max_pool_forward(const T* x, T* y, const PoolGeometry& g, T* scratch) {
  const int64_t Wp = g.width + 2, s = g.stride;
  pad_plane(x, g.height, g.width, 1, negative_infinity<T>(), false, scratch);
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    for (int64_t ow = 0; ow < g.out_width; ++ow) {
      const T* base = scratch + oh * s * Wp + ow * s;
      T best = negative_infinity<T>();
      // A larger value or a NaN replaces the maximum so far, as in LibTorch.
      for (int64_t i = 0; i < 3; ++i) {
        for (int64_t j = 0; j < 3; ++j) {
          const T v = base[i * Wp + j];
          best = (v > best || v != v) ? v : best;
        }
      }
      y[oh * g.out_width + ow] = best;
    }
  }
}

// Branch-free: with random data a branch per tap mispredicts often enough to cost 10x.
template <typename T>
void max_pool_backward(const T* x, const T* gy, T* gx, const PoolGeometry& g, T* scratch) {
  const int64_t Hp = g.height + 2, Wp = g.width + 2, s = g.stride;
  T* P = scratch;
  T* G = scratch + Hp * Wp;
  pad_plane(x, g.height, g.width, 1, negative_infinity<T>(), false, P);
  for (int64_t e = 0; e < Hp * Wp; ++e) G[e] = T(0);
  const int64_t offsets[9] = {0, 1, 2, Wp, Wp + 1, Wp + 2, 2 * Wp, 2 * Wp + 1, 2 * Wp + 2};
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    for (int64_t ow = 0; ow < g.out_width; ++ow) {
      const T* base = P + oh * s * Wp + ow * s;
      T best = base[0];
      int64_t arg = 0;
      for (int t = 1; t < 9; ++t) {
        const T v = base[offsets[t]];
        const bool greater = v > best;
        best = greater ? v : best;
        arg = greater ? offsets[t] : arg;
      }
      G[oh * s * Wp + ow * s + arg] += gy[oh * g.out_width + ow];
    }
  }
  crop_plane(G, Wp, 1, gx, g.height, g.width);
}

// Taps of a 3-wide window starting at padded position o*s inside a plane of `size`.
inline int64_t taps_inside(int64_t o, int64_t s, int64_t size) {
  const int64_t first = o * s - 1, last = o * s + 1;
  return (last < size - 1 ? last : size - 1) - (first > 0 ? first : 0) + 1;
}

template <typename T>
void avg_pool_forward(const T* x, T* y, const PoolGeometry& g, T* scratch) {
  const int64_t Wp = g.width + 2, s = g.stride;
  pad_plane(x, g.height, g.width, 1, T(0), false, scratch);
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    const int64_t rows = taps_inside(oh, s, g.height);
    for (int64_t ow = 0; ow < g.out_width; ++ow) {
      const T* base = scratch + oh * s * Wp + ow * s;
      T sum = T(0);
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j) sum += base[i * Wp + j];
      y[oh * g.out_width + ow] = sum / static_cast<T>(rows * taps_inside(ow, s, g.width));
    }
  }
}

template <typename T>
void avg_pool_backward(const T* gy, T* gx, const PoolGeometry& g, T* scratch) {
  const int64_t Hp = g.height + 2, Wp = g.width + 2, s = g.stride;
  T* G = scratch;
  for (int64_t e = 0; e < Hp * Wp; ++e) G[e] = T(0);
  for (int64_t oh = 0; oh < g.out_height; ++oh) {
    const int64_t rows = taps_inside(oh, s, g.height);
    for (int64_t ow = 0; ow < g.out_width; ++ow) {
      const T v = gy[oh * g.out_width + ow] / static_cast<T>(rows * taps_inside(ow, s, g.width));
      T* base = G + oh * s * Wp + ow * s;
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j) base[i * Wp + j] += v;
    }
  }
  crop_plane(G, Wp, 1, gx, g.height, g.width);
}

template <typename T>
void moments(const T* x, int64_t n, T shift, double* sum, double* sum_squares) {
  double s = 0, ss = 0;
  for (int64_t e = 0; e < n; ++e) {
    const double v = static_cast<double>(x[e]) - static_cast<double>(shift);
    s += v;
    ss += v * v;
  }
  *sum = s;
  *sum_squares = ss;
}

template <typename T>
void scale_shift(const T* x, T* y, int64_t n, T scale, T offset) {
  for (int64_t e = 0; e < n; ++e) y[e] = x[e] * scale + offset;
}

template <typename T>
void grad_moments(const T* x, const T* gy, int64_t n, T mean, double* sum_gy, double* sum_gy_xc) {
  double s = 0, sx = 0;
  for (int64_t e = 0; e < n; ++e) {
    s += static_cast<double>(gy[e]);
    sx += static_cast<double>(gy[e]) * (static_cast<double>(x[e]) - static_cast<double>(mean));
  }
  *sum_gy = s;
  *sum_gy_xc = sx;
}

template <typename T>
void normalize_backward(const T* x, const T* gy, T* gx, int64_t n, T a, T b, T c) {
  for (int64_t e = 0; e < n; ++e) gx[e] = a * gy[e] + b * x[e] + c;
}

// Pixel blocks small enough that a block of every output row stays in L1 while the inputs
// stream through it; the p loops vectorise.
constexpr int64_t kPixelBlock = 64;

template <typename T>
void pointwise(const T* x, const T* w, T* y, int64_t inputs, int64_t outputs, int64_t pixels,
               int64_t begin, int64_t end) {
  for (int64_t p0 = begin; p0 < end; p0 += kPixelBlock) {
    const int64_t n = end - p0 < kPixelBlock ? end - p0 : kPixelBlock;
    for (int64_t o = 0; o < outputs; ++o) {
      T* __restrict__ yr = y + o * pixels + p0;
      T acc[kPixelBlock];
      for (int64_t p = 0; p < n; ++p) acc[p] = T(0);
      for (int64_t i = 0; i < inputs; ++i) {
        const T wv = w[o * inputs + i];
        const T* __restrict__ xr = x + i * pixels + p0;
        for (int64_t p = 0; p < n; ++p) acc[p] += wv * xr[p];
      }
      for (int64_t p = 0; p < n; ++p) yr[p] = acc[p];
    }
  }
}

template <typename T>
void pointwise_wgrad(const T* x, const T* gy, T* gw, int64_t inputs, int64_t outputs,
                     int64_t pixels, int64_t begin, int64_t end) {
  for (int64_t o = 0; o < outputs; ++o) {
    const T* __restrict__ g = gy + o * pixels;
    for (int64_t i = 0; i < inputs; ++i) {
      const T* __restrict__ xr = x + i * pixels;
      T acc = T(0);
      for (int64_t p = begin; p < end; ++p) acc += g[p] * xr[p];
      gw[o * inputs + i] += acc;
    }
  }
}

template <typename T>
PlaneKernels<T> generic_table() {
  PlaneKernels<T> t;
  t.conv_forward = conv_forward<T, GenericInner<T>>;
  t.conv_backward = conv_backward<T, GenericInner<T>>;
  t.max_pool_forward = max_pool_forward<T>;
  t.max_pool_backward = max_pool_backward<T>;
  t.avg_pool_forward = avg_pool_forward<T>;
  t.avg_pool_backward = avg_pool_backward<T>;
  t.moments = moments<T>;
  t.scale_shift = scale_shift<T>;
  t.grad_moments = grad_moments<T>;
  t.normalize_backward = normalize_backward<T>;
  t.pointwise = pointwise<T>;
  t.pointwise_wgrad = pointwise_wgrad<T>;
  return t;
}

}  // namespace
}  // namespace kernels
}  // namespace datanas
