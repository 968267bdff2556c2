// Native FactorizedReduce convolutions as an autograd function: DARTS' stride-2 skip connection
// and the preprocessing after a reduction cell, ReLU -> two stride-2 1x1 convs (one on the even
// pixel grid, one on the grid shifted by one pixel) -> channel concatenation. The batch norm
// that follows is the caller's.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

namespace datanas {

// Whether native_factorized_reduce takes x: a 4-D channels-last float or double CPU tensor.
bool can_reduce_natively(const at::Tensor& x);

// x (N, Ci, H, W) channels-last; w_even (Ce, Ci, 1, 1) and w_odd (Co, Ci, 1, 1) of x's dtype.
// Returns the (N, Ce + Co, ceil(H / 2), ceil(W / 2)) channels-last concatenation of
// conv(relu(x), w_even, stride 2) and of the same conv of relu(x) shifted by one pixel down and
// right (zero past x's edge); differentiable in x and both weights.
at::Tensor native_factorized_reduce(const at::Tensor& x, const at::Tensor& w_even,
                                    const at::Tensor& w_odd);
// The same on x given as its channel parts (kernels/channel_parts.h), each of which gets its own
// gradient; an Error unless they share their dtype, batch, height and width.
at::Tensor native_factorized_reduce(const std::vector<at::Tensor>& parts, const at::Tensor& w_even,
                                    const at::Tensor& w_odd);

}  // namespace datanas
