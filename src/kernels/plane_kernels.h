// Per-plane (one image, one channel) kernels behind the native ops, on raw NCHW pointers. The
// autograd functions parallelise over planes and pick a table: AVX2 + FMA for float when the CPU
// has it (plane_kernels_avx2*.cpp, built with -mavx2 -mfma), else the portable one. This header
// and the AVX2 file use no LibTorch or standard-library templates, so nothing compiled with AVX2
// can be merged into code that runs on other CPUs.
#pragma once
#include <cstdint>

namespace datanas {
namespace kernels {

// Depthwise k x k convolution (square kernel, same padding on every side).
struct ConvGeometry {
  int64_t height = 0, width = 0;  // input plane
  int64_t out_height = 0, out_width = 0;
  int64_t kernel = 3, stride = 1, padding = 1, dilation = 1;
};

// 3x3 pooling with padding 1.
struct PoolGeometry {
  int64_t height = 0, width = 0, out_height = 0, out_width = 0, stride = 1;
};

// Elements of scratch memory each plane call needs.
int64_t conv_scratch_elements(const ConvGeometry& g);
int64_t pool_scratch_elements(const PoolGeometry& g);

template <typename T>
struct PlaneKernels {
  // y = conv(relu ? relu(x) : x, w).
  void (*conv_forward)(const T* x, const T* w, T* y, const ConvGeometry& g, bool relu, T* scratch);
  // gx (H x W, overwritten) and gw (k x k, accumulated into; null: none) from gy (Ho x Wo).
  void (*conv_backward)(const T* x, const T* w, const T* gy, T* gx, T* gw, const ConvGeometry& g,
                        bool relu, T* scratch);
  void (*max_pool_forward)(const T* x, T* y, const PoolGeometry& g, T* scratch);
  // gx overwritten; ties go to the first maximum in row-major order, as in LibTorch.
  void (*max_pool_backward)(const T* x, const T* gy, T* gx, const PoolGeometry& g, T* scratch);
  // Average over the taps inside the plane (count_include_pad = false).
  void (*avg_pool_forward)(const T* x, T* y, const PoolGeometry& g, T* scratch);
  void (*avg_pool_backward)(const T* gy, T* gx, const PoolGeometry& g, T* scratch);
  // Per-plane pieces of batch norm: sums of (x - shift) and of its square ...
  void (*moments)(const T* x, int64_t n, T shift, double* sum, double* sum_squares);
  // ... y = x * scale + offset ...
  void (*scale_shift)(const T* x, T* y, int64_t n, T scale, T offset);
  // ... sums of gy and of gy * (x - mean) ...
  void (*grad_moments)(const T* x, const T* gy, int64_t n, T mean, double* sum_gy,
                       double* sum_gy_xc);
  // ... and gx = a * gy + b * x + c.
  void (*normalize_backward)(const T* x, const T* gy, T* gx, int64_t n, T a, T b, T c);
  // Pointwise (1x1) conv of one sample over pixels [begin, end) of its `pixels`:
  // y[o, p] = sum_i w[o, i] x[i, p] (w row-major outputs x inputs; x, y channel-major).
  void (*pointwise)(const T* x, const T* w, T* y, int64_t inputs, int64_t outputs, int64_t pixels,
                    int64_t begin, int64_t end);
  // gw[o, i] += sum_p gy[o, p] x[i, p] over pixels [begin, end).
  void (*pointwise_wgrad)(const T* x, const T* gy, T* gw, int64_t inputs, int64_t outputs,
                          int64_t pixels, int64_t begin, int64_t end);
};

namespace portable {
const PlaneKernels<float>& kernels_f32();
const PlaneKernels<double>& kernels_f64();
}  // namespace portable

namespace avx2 {
const PlaneKernels<float>& kernels_f32();  // call only where the CPU has AVX2 and FMA
}  // namespace avx2

// The fastest float table this CPU runs, and the double one.
const PlaneKernels<float>& best_kernels_f32();
inline const PlaneKernels<double>& best_kernels_f64() { return portable::kernels_f64(); }

}  // namespace kernels
}  // namespace datanas
