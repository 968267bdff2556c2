// The memory layout of image tensors: NCHW or NHWC (channels-last). Which one a run uses
// follows its kernel backend (see channels_last_for in kernels/kernel_backend.h).
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <string>

namespace datanas {

std::string memory_format_name(bool channels_last);

// Puts the module's 4-D parameters (and buffers) in the chosen layout.
void set_memory_format(torch::nn::Module& module, bool channels_last);
// `images` in the chosen layout (a no-op when it already is).
at::Tensor in_memory_format(const at::Tensor& images, bool channels_last);

}  // namespace datanas
