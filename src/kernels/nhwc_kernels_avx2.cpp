// The NHWC and flat float kernels built with -mavx2 -mfma (CMakeLists.txt): the same loops as
// the portable tables, vectorised 8 floats wide. Called only where the CPU has both.
#include "kernels/flat_kernels_generic.h"
#include "kernels/nhwc_kernels_generic.h"

namespace datanas {
namespace kernels {
namespace avx2 {

const NhwcKernels<float>& nhwc_kernels_f32() {
  static const NhwcKernels<float> table = nhwc::generic_nhwc_table<float>();
  return table;
}

const FlatKernels<float>& flat_kernels_f32() {
  static const FlatKernels<float> table = flat::generic_flat_table<float>();
  return table;
}

}  // namespace avx2
}  // namespace kernels
}  // namespace datanas
