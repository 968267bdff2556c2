// Which kernel table runs: DATANAS_CPU_CAPABILITY's values against what a CPU supports, and the
// table in use never beyond this CPU.
#include <gtest/gtest.h>

#include <string>

#include "kernels/cpu_capability.h"
#include "util/error.h"

namespace datanas {
namespace {

TEST(KernelCapability, Requests) {
  using kernels::CpuCapability;
  using kernels::parse_cpu_capability;
  EXPECT_EQ(parse_cpu_capability("", CpuCapability::kAvx2), CpuCapability::kAvx2);
  EXPECT_EQ(parse_cpu_capability("avx2", CpuCapability::kAvx512), CpuCapability::kAvx2);
  EXPECT_EQ(parse_cpu_capability("portable", CpuCapability::kAvx512), CpuCapability::kPortable);
  EXPECT_EQ(parse_cpu_capability("avx512", CpuCapability::kAvx512), CpuCapability::kAvx512);
  const auto message = [](const std::string& text, CpuCapability supported) {
    try {
      parse_cpu_capability(text, supported);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message("avx512", CpuCapability::kAvx2),
            "DATANAS_CPU_CAPABILITY=avx512: this CPU supports at most avx2");
  EXPECT_EQ(message("sse4", CpuCapability::kAvx512),
            "DATANAS_CPU_CAPABILITY=sse4: expected portable, avx2 or avx512");
  // What the kernels run with is never more than the CPU has.
  EXPECT_LE(kernels::kernel_capability(), kernels::cpu_supported_capability());
}

}  // namespace
}  // namespace datanas
