#include "kernels/pool_bn.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/modules/batchnorm.h>

#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/fused_batch_norm.h"
#include "kernels/layout.h"
#include "kernels/pool.h"
#include "kernels/sample_moments.h"
#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using namespace kernels;

struct FusedInputs {
  at::Tensor x;
  PoolGeometry g;
  bool max;
  BatchNormArgs bn;
};

// z = pool(x), and its batch moments; with `grad` defined (a measured block) z is pooled a sample
// at a time into scratch, never stored, and the gradient sums are gathered from it there.
template <typename T>
BlockMoments pool_with_moments(const FusedInputs& in, T* zp, const at::Tensor& grad) {
  const auto& k = nhwc_table<T>();
  const auto pool = in.max ? k.max_pool_forward : k.avg_pool_forward;
  const int64_t N = in.x.size(0), C = in.x.size(1), P = in.g.out_height * in.g.out_width;
  const int64_t in_size = in.g.height * in.g.width * C;
  const bool measure = grad.defined();
  SampleMoments<T> moments(N, C, measure);
  const T* xp = in.x.data_ptr<T>();
  const T* gp = measure ? grad.data_ptr<T>() : nullptr;
  for_each_sample<T>(N, measure ? P * C : 0, [&](int64_t n, T* scratch) {
    T* zs = measure ? scratch : zp + n * P * C;
    const BlockSums<T> s = moments.of(n, measure ? gp + n * P * C : nullptr);
    pool(xp + n * in_size, zs, C, in.g);
    std::copy(zs, zs + C, s.shift);
    k.moments(zs, C, 0, P, s.shift, s.sum, s.sum_squares);
    if (measure) k.grad_moments(zs, s.g, C, 0, P, s.shift, s.sum_g, s.sum_gz);
  });
  return moments.combine(P, in.x.options().dtype(at::kDouble));
}

// With ctx null (no autograd) z is normalised in place and nothing is saved. Weighted (ctx
// non-null), the outputs are z and its map (fused_batch_norm.h), else the normalised output.
template <typename T>
variable_list forward_typed(AutogradContext* ctx, const FusedInputs& in,
                            const OutputWeight& weight) {
  const at::Tensor& x = in.x;
  const int64_t C = x.size(1);
  at::Tensor z = at::empty({x.size(0), C, in.g.out_height, in.g.out_width},
                           x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const BlockMoments zm = pool_with_moments<T>(in, z.data_ptr<T>(), at::Tensor());
  BatchMoments moments;
  variable_list out = batch_norm_outputs(ctx, z, zm.mean, zm.var, in.bn, weight,
                                         /*keep_z=*/ctx != nullptr, &moments);
  if (ctx) {
    // z holds the windows' maxima: max pooling's backward finds them there, not again.
    ctx->save_for_backward(
        {x, in.bn.weight, z, moments.mean, moments.invstd, in.bn.bias, weight.row});
    ctx->saved_data["stride"] = in.g.stride;
    ctx->saved_data["max"] = in.max;
    ctx->saved_data["index"] = weight.index;
  }
  return out;
}

template <typename T>
variable_list backward_typed(AutogradContext* ctx, const at::Tensor& grad) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor &x = saved[0], &bn_weight = saved[1], &z = saved[2];
  const bool max = ctx->saved_data["max"].toBool();
  const PoolGeometry g = pool3x3_geometry(x, ctx->saved_data["stride"].toInt());
  const at::Tensor& bn_bias = saved[5];
  const OutputWeight weight{saved[6], ctx->saved_data["index"].toInt()};
  const at::Tensor gy = grad.contiguous(at::MemoryFormat::ChannelsLast);
  double w_grad = 0.0;
  const NormalizeBackwardMap map =
      output_backward_map(z, gy, {saved[3], saved[4]}, bn_weight, bn_bias, weight, &w_grad);
  const std::vector<T> a = values_of<T>(map.a), b = values_of<T>(map.b), c0 = values_of<T>(map.c0);
  const auto& k = nhwc_table<T>();
  const int64_t C = x.size(1), P = g.out_height * g.out_width, in_size = g.height * g.width * C;
  at::Tensor gx = at::empty_like(x);
  const T* xp = x.data_ptr<T>();
  const T* zp = z.data_ptr<T>();
  const T* gyp = gy.data_ptr<T>();
  T* gxp = gx.data_ptr<T>();
  // The batch norm's input gradient is made as the pool's backward reads it.
  const PoolOutputGradMap<T> bn_map{a.data(), b.data(), c0.data()};
  for_each_sample(x.size(0), [&](int64_t n) {
    const T* zs = zp + n * P * C;
    const T* gys = gyp + n * P * C;
    if (max) {
      k.max_pool_backward(xp + n * in_size, zs, gys, &bn_map, gxp + n * in_size, C, g);
    } else {
      k.avg_pool_backward(zs, gys, &bn_map, gxp + n * in_size, C, g);
    }
  });
  return {gx,
          at::Tensor(),
          at::Tensor(),
          weight_grad_of(map, bn_weight),
          bias_grad_of(map, ctx->saved_data["has_bias"].toBool(), x.scalar_type()),
          at::Tensor(),
          at::Tensor(),
          at::Tensor(),
          at::Tensor(),
          output_weight_grad(weight, ctx->needs_input_grad(5), w_grad),  // row: tensor input 5
          at::Tensor()};
}

FusedInputs checked(const at::Tensor& x, int64_t stride, bool max, const BatchNormArgs& bn) {
  const std::string what = "3x3 pool + batch norm";
  if (!nhwc_float_cpu(x)) throw Error(what + ": expected a channels-last float/double CPU input");
  const PoolGeometry g = pool3x3_geometry(x, stride);
  check_batch_norm_args(bn, x.size(1), x.size(0) * g.out_height * g.out_width, what);
  return {x.contiguous(at::MemoryFormat::ChannelsLast), g, max, bn};
}

struct PoolBNFunction : public torch::autograd::Function<PoolBNFunction> {
  // row (empty: unweighted) and index: the OutputWeight.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, int64_t stride, bool max,
                               const at::Tensor& bn_weight, const at::Tensor& bn_bias,
                               const at::Tensor& running_mean, const at::Tensor& running_var,
                               double momentum, double eps, const at::Tensor& row, int64_t index) {
    const FusedInputs in =
        checked(x, stride, max, {bn_weight, bn_bias, running_mean, running_var, momentum, eps});
    check_output_weight({row, index}, "3x3 pool + batch norm");
    ctx->saved_data["has_bias"] = present(bn_bias);
    return x.scalar_type() == at::kFloat ? forward_typed<float>(ctx, in, {row, index})
                                         : forward_typed<double>(ctx, in, {row, index});
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return grads[0].scalar_type() == at::kFloat ? backward_typed<float>(ctx, grads[0])
                                                : backward_typed<double>(ctx, grads[0]);
  }
};

variable_list apply_fused(const at::Tensor& x, int64_t stride, bool max, const BatchNormArgs& bn,
                          const OutputWeight& weight) {
  return PoolBNFunction::apply(x, stride, max, or_empty(bn.weight, x), or_empty(bn.bias, x),
                               or_empty(bn.running_mean, x), or_empty(bn.running_var, x),
                               bn.momentum, bn.eps, or_empty(weight.row, x), weight.index);
}

bool fuses(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x) {
  return nhwc_float_cpu(x) && uses_batch_statistics(bn);
}

}  // namespace

at::Tensor native_pool_bn_train(const at::Tensor& x, int64_t stride, bool max,
                                const at::Tensor& bn_weight, const at::Tensor& bn_bias,
                                const at::Tensor& running_mean, const at::Tensor& running_var,
                                double momentum, double eps) {
  return apply_fused(x, stride, max, {bn_weight, bn_bias, running_mean, running_var, momentum, eps},
                     {})[0];
}

bool can_measure_pool(const at::Tensor& x) {
  return !at::GradMode::is_enabled() && nhwc_float_cpu(x);
}

BlockMoments native_pool_measure(const at::Tensor& x, int64_t stride, bool max,
                                 const at::Tensor& grad) {
  if (!can_measure_pool(x))
    throw Error("3x3 pool measure: expected a channels-last float/double CPU input, autograd off");
  const FusedInputs in = checked(x, stride, max, BatchNormArgs{});
  const at::Tensor g = measured_gradient(
      grad, {x.size(0), x.size(1), in.g.out_height, in.g.out_width}, x.scalar_type(),
      "3x3 pool measure: expected a gradient of the pooled output's shape and dtype");
  return x.scalar_type() == at::kFloat ? pool_with_moments<float>(in, nullptr, g)
                                       : pool_with_moments<double>(in, nullptr, g);
}

at::Tensor pool_batch_norm(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x, int64_t stride,
                           bool max) {
  if (!fuses(bn, x)) {
    at::Tensor y = max ? native_max_pool3x3(x, stride) : native_avg_pool3x3(x, stride);
    return batch_norm_forward(bn, std::move(y), KernelBackend::kNative);
  }
  if (at::GradMode::is_enabled()) return apply_fused(x, stride, max, training_args(bn), {})[0];
  FusedInputs in = checked(
      x, stride, max, {bn.weight, bn.bias, bn.running_mean, bn.running_var, 0.0, bn.options.eps()});
  in.bn.momentum = next_momentum(bn);
  return x.scalar_type() == at::kFloat ? forward_typed<float>(nullptr, in, {})[0]
                                       : forward_typed<double>(nullptr, in, {})[0];
}

WeightedOutput pool_batch_norm_weighted(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x,
                                        int64_t stride, bool max, const OutputWeight& weight) {
  if (!fuses(bn, x) || !at::GradMode::is_enabled())
    return {pool_batch_norm(bn, x, stride, max), {}};
  const variable_list out = apply_fused(x, stride, max, training_args(bn), weight);
  return {out[0], out[1]};
}

}  // namespace datanas
