#include "kernels/batch_norm.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/modules/batchnorm.h>

#include <algorithm>
#include <vector>

#include "kernels/batch_norm_math.h"
#include "kernels/batch_norm_passes.h"
#include "kernels/fused_batch_norm.h"
#include "kernels/layout.h"
#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using namespace kernels;

// y = x normalised with its batch statistics, then scaled and shifted (y may be x); the running
// statistics are updated.
template <typename T>
BatchMoments normalize_typed(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                             const at::Tensor& running_mean, const at::Tensor& running_var,
                             double momentum, double eps, at::Tensor& y) {
  const int64_t C = x.size(1), M = x.size(0) * x.size(2) * x.size(3);
  if (M < 2) throw Error("batch norm: expected more than one value per channel in training");
  // Moments around the first pixel's value keep the one-pass variance accurate.
  const at::Tensor first = x.select(0, 0).select(1, 0).select(1, 0).contiguous();
  std::vector<T> shift(first.data_ptr<T>(), first.data_ptr<T>() + C);
  const ChannelSums sums = channel_moments<T>(x, shift);
  at::Tensor mean = at::empty({C}, x.options().dtype(at::kDouble));
  at::Tensor var = at::empty({C}, x.options().dtype(at::kDouble));
  for (int64_t c = 0; c < C; ++c) {
    const double shifted_mean = sums.first[c] / M;
    var.data_ptr<double>()[c] = std::max(0.0, sums.second[c] / M - shifted_mean * shifted_mean);
    mean.data_ptr<double>()[c] = static_cast<double>(shift[c]) + shifted_mean;
  }
  at::Tensor scale, offset;
  const BatchMoments m = affine_from_moments(mean, var, M, weight, bias, running_mean, running_var,
                                             momentum, eps, scale, offset);
  apply_scale_shift<T>(x, y, values_of<T>(scale), values_of<T>(offset));
  return m;
}

template <typename T>
at::Tensor forward_typed(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                         const at::Tensor& bias, const at::Tensor& running_mean,
                         const at::Tensor& running_var, double momentum, double eps) {
  at::Tensor y = at::empty_like(x);
  const BatchMoments m =
      normalize_typed<T>(x, weight, bias, running_mean, running_var, momentum, eps, y);
  ctx->save_for_backward({x, weight, m.mean, m.invstd});
  ctx->saved_data["has_bias"] = present(bias);
  return y;
}

template <typename T>
variable_list backward_typed(AutogradContext* ctx, const at::Tensor& grad) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor& x = saved[0];
  const at::Tensor& weight = saved[1];
  at::Tensor gy = grad.contiguous(kernels::layout_of(x));
  const NormalizeBackwardMap map = batch_norm_backward_map(x, gy, {saved[2], saved[3]}, weight);
  at::Tensor gx = at::empty_like(x);
  apply_normalize_backward<T>(x, gy, gx, values_of<T>(map.a), values_of<T>(map.b),
                              values_of<T>(map.c0));
  return {gx,
          weight_grad_of(map, weight),
          bias_grad_of(map, ctx->saved_data["has_bias"].toBool(), x.scalar_type()),
          at::Tensor(),
          at::Tensor(),
          at::Tensor(),
          at::Tensor()};
}

struct BatchNormFunction : public torch::autograd::Function<BatchNormFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const at::Tensor& bias, const at::Tensor& running_mean,
                            const at::Tensor& running_var, double momentum, double eps) {
    if (input.dim() != 4) throw Error("batch norm: expected a 4-D (N, C, H, W) input");
    at::Tensor x = input.contiguous(kernels::layout_of(input));
    if (x.scalar_type() == at::kFloat)
      return forward_typed<float>(ctx, x, weight, bias, running_mean, running_var, momentum, eps);
    return forward_typed<double>(ctx, x, weight, bias, running_mean, running_var, momentum, eps);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (grads[0].scalar_type() == at::kFloat) return backward_typed<float>(ctx, grads[0]);
    return backward_typed<double>(ctx, grads[0]);
  }
};

}  // namespace

at::Tensor native_batch_norm_train(const at::Tensor& x, const at::Tensor& weight,
                                   const at::Tensor& bias, const at::Tensor& running_mean,
                                   const at::Tensor& running_var, double momentum, double eps) {
  return BatchNormFunction::apply(x, or_empty(weight, x), or_empty(bias, x),
                                  or_empty(running_mean, x), or_empty(running_var, x), momentum,
                                  eps);
}

// Without autograd (the forward-only ops of an architecture step, the gap measurement) an input
// that nobody else holds is normalised in place: no new tensor and its page faults.
static bool can_normalize_in_place(const at::Tensor& x) {
  return !at::GradMode::is_enabled() && x.dim() == 4 && x.use_count() == 1 &&
         x.storage().use_count() == 1 && x.is_contiguous(kernels::layout_of(x));
}

double next_momentum(torch::nn::BatchNorm2dImpl& bn) {
  const auto& o = bn.options;
  double factor = o.momentum().value_or(0.0);
  at::Tensor& count = bn.num_batches_tracked;
  if (bn.is_training() && o.track_running_stats() && count.defined()) {
    if (count.is_cpu() && count.scalar_type() == at::kLong && count.numel() == 1) {
      // Read and written in place: two LibTorch ops per batch norm and step cost more.
      int64_t& batches = *count.data_ptr<int64_t>();
      ++batches;
      if (!o.momentum()) factor = 1.0 / static_cast<double>(batches);
    } else {
      count += 1;
      if (!o.momentum()) factor = 1.0 / count.item<double>();
    }
  }
  return factor;
}

bool uses_batch_statistics(const torch::nn::BatchNorm2dImpl& bn) {
  return bn.is_training() || !bn.options.track_running_stats();
}

at::Tensor batch_norm_forward(torch::nn::BatchNorm2dImpl& bn, at::Tensor x, KernelBackend backend) {
  const auto& o = bn.options;
  if (!uses_batch_statistics(bn) || !use_native_kernels(backend, x) || x.dim() != 4)
    return bn.forward(x);
  const double factor = next_momentum(bn);
  if (!can_normalize_in_place(x))
    return native_batch_norm_train(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, factor,
                                   o.eps());
  if (x.scalar_type() == at::kFloat) {
    normalize_typed<float>(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, factor, o.eps(),
                           x);
  } else {
    normalize_typed<double>(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, factor, o.eps(),
                            x);
  }
  return x;
}

ChannelAffine batch_norm_affine(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& mean,
                                const at::Tensor& var, int64_t count) {
  if (count < 2) throw Error("batch norm: expected more than one value per channel in training");
  const double factor = next_momentum(bn);
  at::Tensor scale, offset;
  affine_from_moments(mean, var, count, bn.weight, bn.bias, bn.running_mean, bn.running_var, factor,
                      bn.options.eps(), scale, offset);
  return {scale, offset};
}

double measured_dot(const BlockMoments& block, const ChannelAffine& affine) {
  if (!block.g_sum.defined()) throw Error("measured dot: the block was not measured");
  const at::Tensor scale = affine.scale.to(at::kDouble).contiguous();
  const at::Tensor offset = affine.offset.to(at::kDouble).contiguous();
  const double* s = scale.data_ptr<double>();
  const double* o = offset.data_ptr<double>();
  const double* m = block.mean.data_ptr<double>();
  const double* d = block.g_z_centered.data_ptr<double>();
  const double* gs = block.g_sum.data_ptr<double>();
  // y = z s + o = (z - m) s + (o + m s).
  double dot = 0;
  for (int64_t c = 0; c < block.mean.numel(); ++c)
    dot += s[c] * d[c] + (o[c] + m[c] * s[c]) * gs[c];
  return dot;
}

at::Tensor apply_channel_affine(at::Tensor x, const ChannelAffine& affine) {
  if (x.scalar_type() == at::kFloat) {
    apply_scale_shift<float>(x, x, values_of<float>(affine.scale), values_of<float>(affine.offset));
  } else {
    apply_scale_shift<double>(x, x, values_of<double>(affine.scale),
                              values_of<double>(affine.offset));
  }
  return x;
}

}  // namespace datanas
