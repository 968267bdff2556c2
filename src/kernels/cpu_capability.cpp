#include "kernels/cpu_capability.h"

#include <cstdlib>

#include "util/error.h"

namespace datanas {
namespace kernels {

CpuCapability cpu_supported_capability() {
  // GCC's checks include the operating system's support for the wider registers (XGETBV).
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("fma"))
    return CpuCapability::kAvx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuCapability::kAvx2;
  return CpuCapability::kPortable;
}

std::string cpu_capability_name(CpuCapability capability) {
  switch (capability) {
    case CpuCapability::kAvx512:
      return "avx512";
    case CpuCapability::kAvx2:
      return "avx2";
    default:
      return "portable";
  }
}

CpuCapability parse_cpu_capability(const std::string& text, CpuCapability supported) {
  if (text.empty()) return supported;
  for (CpuCapability c : {CpuCapability::kPortable, CpuCapability::kAvx2, CpuCapability::kAvx512}) {
    if (text != cpu_capability_name(c)) continue;
    if (c > supported)
      throw Error("DATANAS_CPU_CAPABILITY=" + text + ": this CPU supports at most " +
                  cpu_capability_name(supported));
    return c;
  }
  throw Error("DATANAS_CPU_CAPABILITY=" + text + ": expected portable, avx2 or avx512");
}

CpuCapability kernel_capability() {
  static const CpuCapability capability = [] {
    const char* requested = std::getenv("DATANAS_CPU_CAPABILITY");
    return parse_cpu_capability(requested ? requested : "", cpu_supported_capability());
  }();
  return capability;
}

}  // namespace kernels
}  // namespace datanas
