#include "kernels/kernel_backend.h"

#include <ATen/core/Tensor.h>

#include "util/error.h"

namespace datanas {

KernelBackend parse_kernel_backend(const std::string& text) {
  if (text == "native") return KernelBackend::kNative;
  if (text == "torch") return KernelBackend::kTorch;
  throw Error("--kernels: expected native or torch, got '" + text + "'");
}

std::string kernel_backend_name(KernelBackend backend) {
  return backend == KernelBackend::kNative ? "native" : "torch";
}

bool use_native_kernels(KernelBackend backend, const at::Tensor& x) {
  if (backend != KernelBackend::kNative || !x.is_cpu() || x.is_sparse()) return false;
  return x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble;
}

bool channels_last_for(const std::string& memory_format) {
  if (memory_format == "auto") return true;
  if (memory_format == "channels-last") return true;
  if (memory_format == "nchw") return false;
  throw Error("--memory-format " + memory_format + ": expected auto, channels-last or nchw");
}

}  // namespace datanas
