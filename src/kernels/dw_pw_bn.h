// DARTS' ReLU -> depthwise -> pointwise -> BN block (one half of a sep conv, all of a dil conv)
// as one native autograd function in channels-last, for training-mode batch norms. The forward
// is the fused per-sample pass of dw_pw_block (the depthwise output never leaves cache); the
// backward works a sample at a time in cache too: it makes the depthwise output again (cheaper
// than storing and reading it back), the batch norm's input gradient, the pointwise conv's
// gradients, and the depthwise conv's. Only the block's input, weights and z go through memory.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels/batch_norm.h"
#include "kernels/depthwise_conv.h"
#include "kernels/fused_batch_norm.h"

namespace datanas {

// bn(pointwise(depthwise(relu(x)))) with the native kernels: dw_weight (C, 1, k, k), pw_weight
// (outputs, C, 1, 1); `options.relu_input` is implied. One fused function where x is a
// channels-last float/double CPU tensor, the conv has stride 1, autograd is on and bn uses
// batch statistics; else the separate native depthwise conv and pointwise conv + batch norm.
at::Tensor dw_pw_batch_norm(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x,
                            const at::Tensor& dw_weight, const at::Tensor& pw_weight,
                            const DepthwiseConvOptions& options);

// The links (kernels/grad_sums_link.h) of a sep conv's two fused blocks, undefined where none:
// `from` on the first block, whose backward takes its batch norm's gradient sums there, and `to`
// on the second, whose backward leaves them there as it makes its input's gradient.
struct BlockSumsLinks {
  at::Tensor from, to;
};

// The block weighed in a supernet node's sum (kernels/fused_batch_norm.h): {z, map} where the
// fused function takes x, else {dw_pw_batch_norm(...), undefined}; with an absent weight row,
// {the output, undefined}. input_map (undefined: none) is the map of the block before, whose
// batch norm is left to this one (a sep conv's first block, weighed by unit_output_weight): the
// block then runs on x * input_map[0] + input_map[1], applied while it pads x, and x's gradient
// is that of the mapped value; links as above; it needs the fused function and a stride-1 conv that
// keeps the size (else an Error).
kernels::WeightedOutput dw_pw_batch_norm_weighted(torch::nn::BatchNorm2dImpl& bn,
                                                  const at::Tensor& x, const at::Tensor& dw_weight,
                                                  const at::Tensor& pw_weight,
                                                  const DepthwiseConvOptions& options,
                                                  const kernels::OutputWeight& weight,
                                                  const at::Tensor& input_map = {},
                                                  const BlockSumsLinks& links = {});

// The fused function itself. bn_weight, bn_bias and the running statistics may be undefined
// (affine = false, no running statistics), which are updated as at::batch_norm does.
// Differentiable in x, both conv weights, bn_weight and bn_bias.
at::Tensor native_dw_pw_bn_train(const at::Tensor& x, const at::Tensor& dw_weight,
                                 const at::Tensor& pw_weight, const DepthwiseConvOptions& options,
                                 const at::Tensor& bn_weight, const at::Tensor& bn_bias,
                                 const at::Tensor& running_mean, const at::Tensor& running_var,
                                 double momentum, double eps);

}  // namespace datanas
