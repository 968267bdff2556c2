// Element-wise kernels over flat ranges of same-layout tensors, behind the native mixture of a
// supernet edge (weighted_sum.h): the weighted sum of the op outputs and, backward, the dot
// product of each output with the upstream gradient and each output's gradient; the same sum
// adds the gradients of a tensor's consumers (fan_out.h); and the SGD step (sgd_step.h). Built
// like nhwc_kernels.h: AVX-512 or AVX2 + FMA for float where the CPU has it, portable otherwise
// and for double.
#pragma once
#include <cstdint>

namespace datanas {
namespace kernels {

constexpr int kMaxWeightedTerms = 16;
constexpr int64_t kFlatChunk = 16384;  // elements per parallel task of the callers

// One parameter's SGD step in T: d = g + weight_decay p; buf = momentum buf + keep d (or d, a
// fresh buffer); d = d + momentum buf (Nesterov) or buf; p += step d.
template <typename T>
struct SgdCoefficients {
  T weight_decay, momentum, keep, step;
  bool decay, with_momentum, nesterov, fresh;
};

template <typename T>
struct FlatKernels {
  // y[e] = sum_k w[k] values[k][e] over [begin, end), for count <= kMaxWeightedTerms terms.
  void (*weighted_sum)(const T* const* values, const T* w, int count, T* y, int64_t begin,
                       int64_t end);
  // y[p C + c] = sum_k w[k] (values[k][p C + c] scales[k C + c] + offsets[k C + c]) over the
  // channels-last elements [begin, end) (whole pixels: multiples of C), for count <=
  // kMaxWeightedTerms terms.
  void (*channel_weighted_sum)(const T* const* values, const T* w, const T* scales,
                               const T* offsets, int count, int64_t C, T* y, int64_t begin,
                               int64_t end);
  // dots[k] += sum_e values[k][e] g[e] over [begin, end).
  void (*dots)(const T* const* values, int count, const T* g, double* dots, int64_t begin,
               int64_t end);
  // out[k][e] = w[k] g[e] over [begin, end), for count <= kMaxWeightedTerms outputs.
  void (*scaled_copies)(const T* g, const T* w, int count, T* const* out, int64_t begin,
                        int64_t end);
  // The SGD step over [begin, end) (buf unused without momentum) in LibTorch's arithmetic: each
  // of its adds with a scale is one fused multiply-add where its kernels have FMA (the AVX2
  // and AVX-512 tables), and two roundings where not (portable), so the float numbers are
  // LibTorch's.
  void (*sgd_update)(T* p, const T* g, T* buf, int64_t begin, int64_t end,
                     const SgdCoefficients<T>& c);
};

namespace portable {
const FlatKernels<float>& flat_kernels_f32();
const FlatKernels<double>& flat_kernels_f64();
}  // namespace portable

namespace avx2 {
const FlatKernels<float>& flat_kernels_f32();  // call only where the CPU has AVX2 and FMA
}  // namespace avx2

namespace avx512 {
const FlatKernels<float>& flat_kernels_f32();  // call only where the CPU has AVX-512 F/DQ/VL/BW
}  // namespace avx512

const FlatKernels<float>& best_flat_kernels_f32();
inline const FlatKernels<double>& best_flat_kernels_f64() { return portable::flat_kernels_f64(); }

// The best table for T (float or double).
template <typename T>
const FlatKernels<T>& best_flat_kernels();
template <>
inline const FlatKernels<float>& best_flat_kernels<float>() {
  return best_flat_kernels_f32();
}
template <>
inline const FlatKernels<double>& best_flat_kernels<double>() {
  return best_flat_kernels_f64();
}

}  // namespace kernels
}  // namespace datanas
