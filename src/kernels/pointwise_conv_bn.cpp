#include "kernels/pointwise_conv_bn.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/modules/batchnorm.h>

#include <algorithm>
#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/fused_batch_norm.h"
#include "kernels/layout.h"
#include "kernels/pointwise_conv.h"
#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using namespace kernels;

// The work is split into fixed chunks of pixels (partial sums, and their order, do not depend
// on the thread count), and each chunk into runs handled while in cache: a run of the conv's
// output or of the batch norm's input gradient, of up to 64 channels, is 64 KB.
constexpr int64_t kChunk = 1024;
constexpr int64_t kRun = 256;

// The conv as a map of P pixels from `inputs` to `outputs` channels.
struct PixelMap {
  int64_t P, inputs, outputs, chunks;
};

PixelMap map_of(const at::Tensor& x, int64_t outputs) {
  const int64_t P = x.size(0) * x.size(2) * x.size(3);
  return {P, x.size(1), outputs, (P + kChunk - 1) / kChunk};
}

// z = a(x) wt for wt (inputs x outputs), and z's batch mean and biased variance (double,
// outputs): each chunk's moments around its first pixel are gathered run by run, while the run
// of z is in cache.
template <typename T>
void conv_with_moments(const at::Tensor& x, const at::Tensor& wt, int64_t outputs, bool relu,
                       at::Tensor& z, at::Tensor& mean, at::Tensor& var) {
  const auto& k = nhwc_table<T>();
  const PixelMap m = map_of(x, outputs);
  std::vector<T> shift(m.chunks * m.outputs);
  std::vector<double> sum(m.chunks * m.outputs, 0.0), sum_squares(sum);
  const T* xp = x.data_ptr<T>();
  const T* wp = wt.data_ptr<T>();
  T* zp = z.data_ptr<T>();
  for_each_pixel_chunk(m.P, kChunk, [&](int64_t t, int64_t begin, int64_t end) {
    T* chunk_shift = &shift[t * m.outputs];
    for (int64_t b = begin; b < end; b += kRun) {
      const int64_t e = std::min(end, b + kRun);
      k.pointwise(xp, wp, zp, m.inputs, m.outputs, b, e, relu, nullptr);
      if (b == begin) std::copy(zp + b * m.outputs, zp + (b + 1) * m.outputs, chunk_shift);
      k.moments(zp, m.outputs, b, e, chunk_shift, &sum[t * m.outputs], &sum_squares[t * m.outputs]);
    }
  });
  combine_groups(
      shift, sum, sum_squares, m.chunks, m.outputs,
      [&](int64_t t) { return std::min(m.P, (t + 1) * kChunk) - t * kChunk; }, mean, var);
}

struct FusedInputs {
  at::Tensor x, conv_weight;
  BatchNormArgs bn;
  bool relu;
};

// The forward; with ctx null (no autograd) z is normalised in place and nothing is saved.
template <typename T>
at::Tensor forward_typed(AutogradContext* ctx, const FusedInputs& in) {
  const at::Tensor& x = in.x;
  const int64_t outputs = in.conv_weight.size(0);
  const at::Tensor wt = transposed_weight<T>(in.conv_weight);
  at::Tensor z = at::empty({x.size(0), outputs, x.size(2), x.size(3)},
                           x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const at::TensorOptions doubles = x.options().dtype(at::kDouble);
  at::Tensor mean = at::empty({outputs}, doubles), var = at::empty({outputs}, doubles);
  conv_with_moments<T>(x, wt, outputs, in.relu, z, mean, var);
  BatchMoments moments;
  const at::Tensor y = normalize_with_moments(z, mean, var, in.bn, ctx != nullptr, &moments);
  if (ctx) {
    ctx->save_for_backward({x, in.conv_weight, in.bn.weight, z, moments.mean, moments.invstd});
    ctx->saved_data["relu"] = in.relu;
  }
  return y;
}

template <typename T>
variable_list backward_typed(AutogradContext* ctx, const at::Tensor& grad) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor &x = saved[0], &conv_weight = saved[1], &bn_weight = saved[2], &z = saved[3];
  const at::Tensor &mean = saved[4], &invstd = saved[5];
  const bool relu = ctx->saved_data["relu"].toBool();
  const auto& k = nhwc_table<T>();
  const PixelMap m = map_of(x, z.size(1));
  const at::Tensor gy = grad.contiguous(at::MemoryFormat::ChannelsLast);
  const NormalizeBackwardMap map = batch_norm_backward_map(z, gy, {mean, invstd}, bn_weight);
  const std::vector<T> a = values_of<T>(map.a), b = values_of<T>(map.b), c0 = values_of<T>(map.c0);
  // An architecture step wants no weight gradient; a network's first layer no input gradient.
  const bool want_x = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1);
  const at::Tensor w = conv_weight.contiguous().view({m.outputs, m.inputs});
  at::Tensor gx = want_x ? at::empty_like(x) : at::Tensor();
  at::Tensor gw_chunks =
      want_w ? at::zeros({m.chunks, m.outputs * m.inputs}, x.options()) : at::Tensor();
  const T* xp = x.data_ptr<T>();
  const T* zp = z.data_ptr<T>();
  const T* gyp = gy.data_ptr<T>();
  const T* wp = w.data_ptr<T>();
  T* gxp = want_x ? gx.data_ptr<T>() : nullptr;
  T* gwp = want_w ? gw_chunks.data_ptr<T>() : nullptr;
  const auto input_grads = want_x && gx.nbytes() >= static_cast<size_t>(kStreamBytes)
                               ? k.pointwise_streamed
                               : k.pointwise;
  for_each_pixel_chunk(m.P, kChunk, [&](int64_t t, int64_t begin, int64_t end) {
    std::vector<T> gz(kRun * m.outputs);  // the batch norm's input gradient, one run
    for (int64_t p = begin; p < end; p += kRun) {
      const int64_t pixels = std::min(end - p, kRun);
      const int64_t x_at = p * m.inputs, z_at = p * m.outputs;
      k.normalize_backward(zp + z_at, gyp + z_at, gz.data(), m.outputs, 0, pixels, a.data(),
                           b.data(), c0.data());
      // Through the fused ReLU the input gradient passes where x > 0.
      if (gxp)
        input_grads(gz.data(), wp, gxp + x_at, m.outputs, m.inputs, 0, pixels, false,
                    relu ? xp + x_at : nullptr);
      if (gwp)
        k.pointwise_wgrad(xp + x_at, gz.data(), gwp + t * m.outputs * m.inputs, m.inputs, m.outputs,
                          0, pixels, relu);
    }
  });
  return {gx,
          want_w ? gw_chunks.sum(0).view(conv_weight.sizes()) : at::Tensor(),
          weight_grad_of(map, bn_weight),
          bias_grad_of(map, ctx->saved_data["has_bias"].toBool(), x.scalar_type()),
          at::Tensor(),
          at::Tensor(),
          at::Tensor(),
          at::Tensor(),
          at::Tensor()};
}

FusedInputs checked(const at::Tensor& x, const at::Tensor& conv_weight, const BatchNormArgs& bn,
                    bool relu) {
  const std::string what = "pointwise conv + batch norm";
  if (!nhwc_float_cpu(x)) throw Error(what + ": expected a channels-last float/double CPU input");
  if (conv_weight.dim() != 4 || conv_weight.size(1) != x.size(1) || conv_weight.size(2) != 1 ||
      conv_weight.size(3) != 1 || conv_weight.scalar_type() != x.scalar_type())
    throw Error(what + ": expected a (outputs, C, 1, 1) weight of x's dtype");
  check_batch_norm_args(bn, conv_weight.size(0), x.size(0) * x.size(2) * x.size(3), what);
  return {x.contiguous(at::MemoryFormat::ChannelsLast), conv_weight, bn, relu};
}

struct PointwiseConvBNFunction : public torch::autograd::Function<PointwiseConvBNFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& conv_weight, const at::Tensor& bn_weight,
                            const at::Tensor& bn_bias, const at::Tensor& running_mean,
                            const at::Tensor& running_var, double momentum, double eps, bool relu) {
    const FusedInputs in = checked(
        x, conv_weight, {bn_weight, bn_bias, running_mean, running_var, momentum, eps}, relu);
    ctx->saved_data["has_bias"] = present(bn_bias);
    return x.scalar_type() == at::kFloat ? forward_typed<float>(ctx, in)
                                         : forward_typed<double>(ctx, in);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return grads[0].scalar_type() == at::kFloat ? backward_typed<float>(ctx, grads[0])
                                                : backward_typed<double>(ctx, grads[0]);
  }
};

}  // namespace

at::Tensor native_pointwise_conv_bn_train(const at::Tensor& x, const at::Tensor& conv_weight,
                                          const at::Tensor& bn_weight, const at::Tensor& bn_bias,
                                          const at::Tensor& running_mean,
                                          const at::Tensor& running_var, double momentum,
                                          double eps, bool relu_input) {
  return PointwiseConvBNFunction::apply(x, conv_weight, or_empty(bn_weight, x),
                                        or_empty(bn_bias, x), or_empty(running_mean, x),
                                        or_empty(running_var, x), momentum, eps, relu_input);
}

at::Tensor pointwise_conv_batch_norm(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x,
                                     const at::Tensor& conv_weight, bool relu_input) {
  if (!nhwc_float_cpu(x) || !uses_batch_statistics(bn) ||
      conv_weight.scalar_type() != x.scalar_type())
    return batch_norm_forward(bn, native_pointwise_conv2d(x, conv_weight, relu_input),
                              KernelBackend::kNative);
  if (at::GradMode::is_enabled())
    return native_pointwise_conv_bn_train(x, conv_weight, bn.weight, bn.bias, bn.running_mean,
                                          bn.running_var, next_momentum(bn), bn.options.eps(),
                                          relu_input);
  FusedInputs in = checked(
      x, conv_weight, {bn.weight, bn.bias, bn.running_mean, bn.running_var, 0.0, bn.options.eps()},
      relu_input);
  in.bn.momentum = next_momentum(bn);
  return x.scalar_type() == at::kFloat ? forward_typed<float>(nullptr, in)
                                       : forward_typed<double>(nullptr, in);
}

}  // namespace datanas
