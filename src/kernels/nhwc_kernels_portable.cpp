#include "kernels/cpu_capability.h"
#include "kernels/flat_kernels_generic.h"
#include "kernels/nhwc_kernels_generic.h"

namespace datanas {
namespace kernels {
int64_t nhwc_conv_scratch_elements(const ConvGeometry& g, int64_t C) {
  return nhwc::conv_scratch(g, C);
}

int64_t nhwc_block_scratch_elements(const ConvGeometry& g, int64_t C, int64_t outputs) {
  return nhwc::block_scratch(g, C, outputs);
}

int64_t nhwc_block_backward_scratch_elements(const ConvGeometry& g, int64_t C, int64_t outputs) {
  return nhwc::block_backward_scratch(g, C, outputs);
}

namespace portable {

const NhwcKernels<float>& nhwc_kernels_f32() {
  static const NhwcKernels<float> table = nhwc::generic_nhwc_table<float>();
  return table;
}

const NhwcKernels<double>& nhwc_kernels_f64() {
  static const NhwcKernels<double> table = nhwc::generic_nhwc_table<double>();
  return table;
}

const FlatKernels<float>& flat_kernels_f32() {
  static const FlatKernels<float> table = flat::generic_flat_table<float>();
  return table;
}

const FlatKernels<double>& flat_kernels_f64() {
  static const FlatKernels<double> table = flat::generic_flat_table<double>();
  return table;
}

}  // namespace portable

// The table of kernel_capability() among a family's three.
template <typename Table>
const Table& of_capability(const Table& (*avx512)(), const Table& (*avx2)(),
                           const Table& (*portable)()) {
  switch (kernel_capability()) {
    case CpuCapability::kAvx512:
      return avx512();
    case CpuCapability::kAvx2:
      return avx2();
    default:
      return portable();
  }
}

const NhwcKernels<float>& best_nhwc_kernels_f32() {
  return of_capability(avx512::nhwc_kernels_f32, avx2::nhwc_kernels_f32,
                       portable::nhwc_kernels_f32);
}

const FlatKernels<float>& best_flat_kernels_f32() {
  return of_capability(avx512::flat_kernels_f32, avx2::flat_kernels_f32,
                       portable::flat_kernels_f32);
}

}  // namespace kernels
}  // namespace datanas
