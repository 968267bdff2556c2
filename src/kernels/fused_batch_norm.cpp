#include "kernels/fused_batch_norm.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/modules/batchnorm.h>

#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/batch_norm_passes.h"
#include "util/error.h"

namespace datanas {
namespace kernels {

BatchNormArgs training_args(torch::nn::BatchNorm2dImpl& bn) {
  return {bn.weight, bn.bias, bn.running_mean, bn.running_var, next_momentum(bn), bn.options.eps()};
}

void check_batch_norm_args(const BatchNormArgs& bn, int64_t channels, int64_t count,
                           const std::string& what) {
  for (const at::Tensor* t : {&bn.weight, &bn.bias, &bn.running_mean, &bn.running_var})
    if (present(*t) && t->numel() != channels)
      throw Error(what + ": expected batch-norm tensors of one value per channel");
  if (count < 2) throw Error(what + ": expected more than one value per channel in training");
}

at::Tensor normalize_with_moments(at::Tensor& z, const at::Tensor& mean, const at::Tensor& var,
                                  const BatchNormArgs& bn, bool keep_z, BatchMoments* moments) {
  at::Tensor scale, offset;
  const BatchMoments m =
      affine_from_moments(mean, var, z.numel() / z.size(1), bn.weight, bn.bias, bn.running_mean,
                          bn.running_var, bn.momentum, bn.eps, scale, offset);
  if (moments) *moments = m;
  at::Tensor y = keep_z ? at::empty_like(z) : z;
  if (z.scalar_type() == at::kFloat) {
    apply_scale_shift<float>(z, y, values_of<float>(scale), values_of<float>(offset));
  } else {
    apply_scale_shift<double>(z, y, values_of<double>(scale), values_of<double>(offset));
  }
  return y;
}

namespace {

// Sums of gy and of gy * (z - shift) per channel, one shift per channel.
ChannelSums grad_sums_around(const at::Tensor& z, const at::Tensor& gy,
                             const std::vector<double>& shift) {
  return z.scalar_type() == at::kFloat
             ? channel_grad_moments<float>(z, gy, values_of<float>(shift))
             : channel_grad_moments<double>(z, gy, values_of<double>(shift));
}

}  // namespace

NormalizeBackwardMap batch_norm_backward_map(const at::Tensor& z, const at::Tensor& gy,
                                             const BatchMoments& moments,
                                             const at::Tensor& weight) {
  const ChannelSums sums = grad_sums_around(z, gy, values_of<double>(moments.mean));
  return normalize_backward_map(sums.first, sums.second, weight, moments.mean.data_ptr<double>(),
                                moments.invstd.data_ptr<double>(),
                                static_cast<double>(z.numel() / z.size(1)));
}

bool keeps_normalized_output(const BatchNormArgs& bn) {
  return !present(bn.weight) && !present(bn.bias);
}

NormalizeBackwardMap normalized_output_backward_map(const at::Tensor& y, const at::Tensor& gy,
                                                    const BatchMoments& moments) {
  const int64_t C = y.size(1);
  const ChannelSums sums = grad_sums_around(y, gy, std::vector<double>(C, 0.0));
  const double M = static_cast<double>(y.numel() / C);
  const double* invstd = moments.invstd.data_ptr<double>();
  NormalizeBackwardMap map{std::vector<double>(C), std::vector<double>(C), std::vector<double>(C),
                           sums.second, sums.first};
  for (int64_t c = 0; c < C; ++c) {
    map.a[c] = invstd[c];
    map.b[c] = -invstd[c] * sums.second[c] / M;
    map.c0[c] = -invstd[c] * sums.first[c] / M;
  }
  return map;
}

OutputWeight unit_output_weight(const at::Tensor& like) {
  return {at::ones({1}, like.options()), 0};
}

void check_output_weight(const OutputWeight& weight, const std::string& what) {
  if (present(weight.row) &&
      (weight.row.dim() != 1 || weight.index < 0 || weight.index >= weight.row.numel()))
    throw Error(what + ": expected a 1-D weight row and an index into it");
}

std::vector<at::Tensor> batch_norm_outputs(torch::autograd::AutogradContext* ctx, at::Tensor& z,
                                           const at::Tensor& mean, const at::Tensor& var,
                                           const BatchNormArgs& bn, const OutputWeight& weight,
                                           bool keep_z, BatchMoments* moments) {
  if (!ctx || !present(weight.row))
    return {normalize_with_moments(z, mean, var, bn, keep_z, moments)};
  at::Tensor scale, offset;
  *moments =
      affine_from_moments(mean, var, z.numel() / z.size(1), bn.weight, bn.bias, bn.running_mean,
                          bn.running_var, bn.momentum, bn.eps, scale, offset);
  at::Tensor map = at::stack({scale, offset}).to(z.scalar_type());
  ctx->mark_non_differentiable({map});
  return {z, map};
}

namespace {

// bn's map of the output's gradient, made the map of a weighted output's (weight.row present).
NormalizeBackwardMap weighted_backward_map(NormalizeBackwardMap map, const at::Tensor& bn_weight,
                                           const at::Tensor& bn_bias, const OutputWeight& weight,
                                           double* w_grad) {
  if (!present(weight.row)) return map;
  // The value is w (gamma zhat + beta): its w gradient is sum_c gamma_c <g, zhat>_c + beta_c
  // <g, 1>_c, the bn map's own weight and bias gradients.
  const std::vector<double> gamma =
      present(bn_weight) ? values_of<double>(bn_weight) : std::vector<double>();
  const std::vector<double> beta =
      present(bn_bias) ? values_of<double>(bn_bias) : std::vector<double>();
  double sum = 0.0;
  for (size_t c = 0; c < map.a.size(); ++c)
    sum += (gamma.empty() ? 1.0 : gamma[c]) * map.grad_weight[c] +
           (beta.empty() ? 0.0 : beta[c] * map.grad_bias[c]);
  *w_grad = sum;
  const double w = weight.row.detach().select(0, weight.index).item<double>();
  for (auto* v : {&map.a, &map.b, &map.c0, &map.grad_weight, &map.grad_bias})
    for (double& x : *v) x *= w;
  return map;
}

}  // namespace

NormalizeBackwardMap output_backward_map(const at::Tensor& z, const at::Tensor& gy,
                                         const BatchMoments& moments, const at::Tensor& bn_weight,
                                         const at::Tensor& bn_bias, const OutputWeight& weight,
                                         double* w_grad) {
  return weighted_backward_map(batch_norm_backward_map(z, gy, moments, bn_weight), bn_weight,
                               bn_bias, weight, w_grad);
}

NormalizeBackwardMap output_backward_map(const std::vector<double>& sum_g,
                                         const std::vector<double>& sum_g_centered, double count,
                                         const BatchMoments& moments, const at::Tensor& bn_weight,
                                         const at::Tensor& bn_bias, const OutputWeight& weight,
                                         double* w_grad) {
  return weighted_backward_map(
      normalize_backward_map(sum_g, sum_g_centered, bn_weight, moments.mean.data_ptr<double>(),
                             moments.invstd.data_ptr<double>(), count),
      bn_weight, bn_bias, weight, w_grad);
}

at::Tensor output_weight_grad(const OutputWeight& weight, bool wanted, double w_grad) {
  if (!present(weight.row) || !wanted) return at::Tensor();
  at::Tensor grad = at::zeros({weight.row.numel()}, weight.row.options().dtype(at::kDouble));
  grad.data_ptr<double>()[weight.index] = w_grad;
  return grad.to(weight.row.scalar_type()).view(weight.row.sizes());
}

at::Tensor weight_grad_of(const NormalizeBackwardMap& map, const at::Tensor& weight) {
  if (!present(weight)) return at::Tensor();
  return at::tensor(map.grad_weight, weight.options().dtype(at::kDouble)).to(weight.scalar_type());
}

at::Tensor bias_grad_of(const NormalizeBackwardMap& map, bool has_bias, at::ScalarType dtype) {
  if (!has_bias) return at::Tensor();
  return at::tensor(map.grad_bias, at::TensorOptions().dtype(at::kDouble)).to(dtype);
}

}  // namespace kernels
}  // namespace datanas
