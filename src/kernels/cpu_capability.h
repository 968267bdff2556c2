// Which instruction set the native float kernels run with: the widest this CPU has, unless the
// environment variable DATANAS_CPU_CAPABILITY (portable, avx2 or avx512) asks for a narrower one,
// as ATEN_CPU_CAPABILITY does for LibTorch's kernels (to compare the tables on one machine, or to
// match the numbers of a machine without AVX-512). Read once, on the first kernel call.
#pragma once
#include <string>

namespace datanas {
namespace kernels {

enum class CpuCapability { kPortable, kAvx2, kAvx512 };

// The widest capability this CPU and its operating system support.
CpuCapability cpu_supported_capability();

// The capability the kernels use; throws datanas::Error when DATANAS_CPU_CAPABILITY names an
// unknown capability or one this CPU lacks.
CpuCapability kernel_capability();

// Parses a DATANAS_CPU_CAPABILITY value against what the CPU supports (empty: `supported`).
CpuCapability parse_cpu_capability(const std::string& text, CpuCapability supported);

std::string cpu_capability_name(CpuCapability capability);

}  // namespace kernels
}  // namespace datanas
