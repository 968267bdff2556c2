// The mixture of a supernet edge as one native kernel: sum_j w[index[j]] * values[j] in one pass
// over the op outputs (LibTorch makes a product and a sum tensor per op), and backward the weight
// gradients as dot products in one more pass.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace datanas {

// Whether native_weighted_sum takes these values: 1 to kMaxWeightedTerms float or double CPU
// tensors of the same sizes and dtype, all contiguous in the first one's layout.
bool can_weight_natively(const std::vector<at::Tensor>& values);

// sum_j w[index[j]] * values[j] for a 1-D w of the values' dtype; differentiable in the values
// and in w (whose gradient is zero off `index`). Same layout as values[0].
// `maps` (empty, or one per value) marks a channels-last value as an op's output before its
// batch norm (kernels/fused_batch_norm.h's WeightedOutput; undefined for the others): its term
// is w[index[j]] (value * map[0][c] + map[1][c]), its gradient is d loss / d term itself (the op
// applies w), and w gets no gradient from it (the op gives w's).
at::Tensor native_weighted_sum(const std::vector<at::Tensor>& values, const at::Tensor& w,
                               const std::vector<int64_t>& index,
                               const std::vector<at::Tensor>& maps = {});

// <g, values[j]> for every j, summed in double; values as can_weight_natively takes them, g of
// their sizes and dtype.
std::vector<double> native_dots(const std::vector<at::Tensor>& values, const at::Tensor& g);

}  // namespace datanas
