// Which implementation runs the cell-space ops: LibTorch's kernels (the reference, and the only
// choice off the CPU) or this project's own CPU kernels (src/kernels/).
#pragma once
#include <string>

namespace at {
class Tensor;
}

namespace datanas {

enum class KernelBackend { kTorch, kNative };

// "native" or "torch"; throws Error naming --kernels otherwise.
KernelBackend parse_kernel_backend(const std::string& text);
std::string kernel_backend_name(KernelBackend backend);

// True when `backend` is native and `x` is a float or double CPU tensor (NCHW or channels-last:
// the kernels run in either); other devices and dtypes fall back to LibTorch.
bool use_native_kernels(KernelBackend backend, const at::Tensor& x);

// `--memory-format auto|channels-last|nchw`: whether networks keep NHWC tensors. `auto` picks
// NHWC for both backends: LibTorch's oneDNN depthwise and pooling kernels run 2-5x faster on it,
// and the native kernels' NHWC search step is faster than their NCHW one at CIFAR size (and
// level with it on the 1-channel demo net). Throws Error naming --memory-format otherwise.
bool channels_last_for(const std::string& memory_format);

}  // namespace datanas
