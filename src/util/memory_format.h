// The memory layout of image tensors. On this CPU LibTorch's oneDNN kernels for depthwise
// convolutions and pooling run 2-5x faster on NHWC (channels-last) tensors than on NCHW ones
// (`datanas bench --what ops --channels-last`), so networks default to it.
#pragma once
#include <string>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

namespace datanas {

// `--memory-format`: "channels-last" (true) or "nchw" (false); throws Error otherwise.
bool parse_channels_last(const std::string& text);
std::string memory_format_name(bool channels_last);

// Puts the module's 4-D parameters (and buffers) in the chosen layout.
void set_memory_format(torch::nn::Module& module, bool channels_last);
// `images` in the chosen layout (a no-op when it already is).
at::Tensor in_memory_format(const at::Tensor& images, bool channels_last);

}  // namespace datanas
