#include "kernels/cpu_capability.h"
#include "kernels/plane_kernels_generic.h"

namespace datanas {
namespace kernels {

int64_t conv_scratch_elements(const ConvGeometry& g) {
  const int64_t Hp = g.height + 2 * g.padding, Wp = g.width + 2 * g.padding;
  const int64_t reach = g.dilation * (g.kernel - 1);
  const int64_t q = reach > g.padding ? reach - g.padding : 0;
  const int64_t transposed = (g.out_height + 2 * q) * (g.out_width + 2 * q);
  // + 2 Hp + 16: the AVX2 stride-2 kernels split rows of odd width into two halves of (Wp+1)/2.
  return Hp * Wp + (transposed > Hp * Wp ? transposed : Hp * Wp) + 2 * Hp + 16;
}

int64_t pool_scratch_elements(const PoolGeometry& g) {
  return 3 * (g.height + 2) * (g.width + 2) + 4 * (g.width + g.out_width + 4) + 16;
}

namespace portable {

const PlaneKernels<float>& kernels_f32() {
  static const PlaneKernels<float> table = generic_table<float>();
  return table;
}

const PlaneKernels<double>& kernels_f64() {
  static const PlaneKernels<double> table = generic_table<double>();
  return table;
}

}  // namespace portable

const PlaneKernels<float>& best_kernels_f32() {
  // The planes have no AVX-512 table: the AVX2 one serves both.
  return kernel_capability() >= CpuCapability::kAvx2 ? avx2::kernels_f32()
                                                     : portable::kernels_f32();
}

}  // namespace kernels
}  // namespace datanas
