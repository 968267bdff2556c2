// One tensor read by several ops, its gradient summed in one pass. Autograd adds the gradients of
// a tensor's consumers one at a time, each sum a new tensor (k consumers: k - 1 passes reading
// two tensors and writing one); native_fan_out hands each consumer its own alias of x, and the
// backward adds every alias's gradient at once (reading k tensors, writing one).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace datanas {

// Whether native_fan_out takes x: a float or double CPU tensor that requires a gradient,
// contiguous in its suggested layout.
bool can_fan_out(const at::Tensor& x);

// `copies` aliases of x (same storage, no copy), differentiable; x's gradient is the sum of
// theirs, in alias order. Aliases nobody used add nothing.
std::vector<at::Tensor> native_fan_out(const at::Tensor& x, int64_t copies);

}  // namespace datanas
