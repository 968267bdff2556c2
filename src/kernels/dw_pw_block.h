// The ReLU -> depthwise -> pointwise half of DARTS' sep/dil conv blocks as one native pass per
// sample, for forward passes without autograd (the ops an architecture step only measures, the
// gap measurement, and the forward of the autograd block in dw_pw_bn.h): the depthwise output
// never leaves cache, and the batch-norm moments of the block's output are gathered as it is
// written. The batch norm itself is left to the caller, so a sep conv can apply its first one on
// the way into its second block.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/batch_norm.h"
#include "kernels/depthwise_conv.h"

namespace datanas {

// z is (N, outputs, Ho, Wo) channels-last, before the batch norm; undefined for a measured block.
struct DwPwOutput : BlockMoments {
  at::Tensor z;
};

// Whether native_dw_pw_forward takes x: a 4-D channels-last float or double CPU tensor, with
// autograd off (the fused pass saves nothing for a backward).
bool can_fuse_dw_pw(const at::Tensor& x);

// z = pointwise(depthwise(relu(a(x)))) with a(x) = x * scale[c] + offset[c] for a pending batch
// norm `input_affine` (null: the identity). dw_weight (C, 1, k, k), pw_weight (outputs, C, 1, 1),
// both of x's dtype; `options.relu_input` is implied.
DwPwOutput native_dw_pw_forward(const at::Tensor& x, const at::Tensor& dw_weight,
                                const at::Tensor& pw_weight, const DepthwiseConvOptions& options,
                                const ChannelAffine* input_affine);

// The same block, for the inner product of a gradient `grad` (z's shape) with the block's
// normalised output, without ever storing z: an architecture step needs only that scalar from
// every op it does not select.
DwPwOutput native_dw_pw_measure(const at::Tensor& x, const at::Tensor& dw_weight,
                                const at::Tensor& pw_weight, const DepthwiseConvOptions& options,
                                const ChannelAffine* input_affine, const at::Tensor& grad);

}  // namespace datanas
