// A 3x3 pool and the training-mode batch norm after it (DARTS' max_pool_3x3 and avg_pool_3x3 in
// the supernet, whose batch norms are affine = false) as one native autograd function in
// channels-last: each sample's pooled output has its moments gathered while it is in cache, and
// the pool's backward makes the batch norm's input gradient as it reads the output gradient
// instead of reading it from a pass of its own.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "kernels/batch_norm.h"
#include "kernels/fused_batch_norm.h"

namespace datanas {

// bn(pool(x)) with the native kernels (max or average 3x3 pooling, padding 1): one fused pass
// where x is a channels-last float/double CPU tensor and bn uses batch statistics, else the
// separate native pool and batch norm.
at::Tensor pool_batch_norm(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x, int64_t stride,
                           bool max);

// The pool weighed in a supernet node's sum (kernels/fused_batch_norm.h): {z, map} where the
// fused function takes x with autograd on, else {pool_batch_norm(...), undefined}.
kernels::WeightedOutput pool_batch_norm_weighted(torch::nn::BatchNorm2dImpl& bn,
                                                 const at::Tensor& x, int64_t stride, bool max,
                                                 const kernels::OutputWeight& weight);

// The fused function itself. x: channels-last float or double on the CPU; bn_weight, bn_bias
// and the running statistics may be undefined, which are updated as at::batch_norm does.
// Differentiable in x, bn_weight and bn_bias.
at::Tensor native_pool_bn_train(const at::Tensor& x, int64_t stride, bool max,
                                const at::Tensor& bn_weight, const at::Tensor& bn_bias,
                                const at::Tensor& running_mean, const at::Tensor& running_var,
                                double momentum, double eps);

// Whether native_pool_measure takes x: a channels-last float/double CPU tensor, autograd off.
bool can_measure_pool(const at::Tensor& x);

// For an architecture step's inner product <grad, bn(pool(x))> (grad: the pooled output's shape):
// the pooled output's batch moments and gradient sums, each sample pooled into scratch and never
// stored. measured_dot(result, the batch norm's map) is the product.
BlockMoments native_pool_measure(const at::Tensor& x, int64_t stride, bool max,
                                 const at::Tensor& grad);

}  // namespace datanas
