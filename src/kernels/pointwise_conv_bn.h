// A pointwise conv and the training-mode batch norm after it, as one native autograd function
// in channels-last: DARTS' ReLU -> 1x1 conv -> BN (every cell's preprocessing) and the end of
// every sep/dil conv block. The batch-norm moments are gathered while each run of the conv's
// output is still in cache, and the backward makes the batch norm's input gradient a run at a
// time, in cache, for both of the conv's gradients, instead of writing it out and reading it
// back twice.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "kernels/batch_norm.h"

namespace datanas {

// One pointwise conv (weight (outputs, C, 1, 1)) and the batch norm after it.
struct PointwiseHead {
  torch::nn::BatchNorm2dImpl* bn;
  at::Tensor conv_weight;
};

// bn(conv(a(x))) of every head on one x given as its channel parts (kernels/channel_parts.h;
// one part: x itself): one fused pass reading x once where the parts are channels-last
// float/double CPU tensors and every bn uses batch statistics, else each head separately on the
// parts joined. The backward writes x's gradient once for all heads (the sum autograd would
// otherwise make of one gradient per head), one tensor per part, laid out as the part. An Error
// unless the parts share their dtype, batch, height and width.
std::vector<at::Tensor> pointwise_conv_batch_norms(const std::vector<PointwiseHead>& heads,
                                                   const std::vector<at::Tensor>& parts,
                                                   bool relu_input);

// bn(conv(a(x))) with the native kernels, for a pointwise conv weight (outputs, C, 1, 1) and
// a = relu with relu_input: one fused pass where x is a channels-last float/double CPU tensor
// and bn uses batch statistics, else the separate native conv and batch norm.
at::Tensor pointwise_conv_batch_norm(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x,
                                     const at::Tensor& conv_weight, bool relu_input);

// The fused function itself. x: channels-last float or double on the CPU; bn_weight, bn_bias
// and the running statistics may be undefined (affine = false, no running statistics), which
// are updated as at::batch_norm does. Differentiable in x, conv_weight, bn_weight and bn_bias.
at::Tensor native_pointwise_conv_bn_train(const at::Tensor& x, const at::Tensor& conv_weight,
                                          const at::Tensor& bn_weight, const at::Tensor& bn_bias,
                                          const at::Tensor& running_mean,
                                          const at::Tensor& running_var, double momentum,
                                          double eps, bool relu_input);

}  // namespace datanas
