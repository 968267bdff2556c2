// Element-wise kernels over flat ranges of same-layout tensors, behind the native mixture of a
// supernet edge (weighted_sum.h): the weighted sum of the op outputs and, backward, the dot
// product of each output with the upstream gradient. Built like nhwc_kernels.h: AVX2 + FMA for
// float where the CPU has it, portable otherwise and for double.
#pragma once
#include <cstdint>

namespace datanas {
namespace kernels {

constexpr int kMaxWeightedTerms = 16;

template <typename T>
struct FlatKernels {
  // y[e] = sum_k w[k] values[k][e] over [begin, end), for count <= kMaxWeightedTerms terms.
  void (*weighted_sum)(const T* const* values, const T* w, int count, T* y, int64_t begin,
                       int64_t end);
  // dots[k] += sum_e values[k][e] g[e] over [begin, end).
  void (*dots)(const T* const* values, int count, const T* g, double* dots, int64_t begin,
               int64_t end);
};

namespace portable {
const FlatKernels<float>& flat_kernels_f32();
const FlatKernels<double>& flat_kernels_f64();
}  // namespace portable

namespace avx2 {
const FlatKernels<float>& flat_kernels_f32();  // call only where the CPU has AVX2 and FMA
}  // namespace avx2

const FlatKernels<float>& best_flat_kernels_f32();
inline const FlatKernels<double>& best_flat_kernels_f64() { return portable::flat_kernels_f64(); }

}  // namespace kernels
}  // namespace datanas
