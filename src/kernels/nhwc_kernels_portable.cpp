#include "kernels/nhwc_kernels_generic.h"

namespace datanas {
namespace kernels {
namespace portable {

const NhwcKernels<float>& nhwc_kernels_f32() {
  static const NhwcKernels<float> table = nhwc::generic_nhwc_table<float>();
  return table;
}

const NhwcKernels<double>& nhwc_kernels_f64() {
  static const NhwcKernels<double> table = nhwc::generic_nhwc_table<double>();
  return table;
}

}  // namespace portable

const NhwcKernels<float>& best_nhwc_kernels_f32() {
  static const bool simd = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return simd ? avx2::nhwc_kernels_f32() : portable::nhwc_kernels_f32();
}

}  // namespace kernels
}  // namespace datanas
