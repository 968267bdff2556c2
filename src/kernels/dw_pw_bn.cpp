#include "kernels/dw_pw_bn.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/modules/batchnorm.h>

#include <vector>

#include "kernels/batch_norm_passes.h"
#include "kernels/dw_pw_block.h"
#include "kernels/fused_batch_norm.h"
#include "kernels/grad_sums_link.h"
#include "kernels/layout.h"
#include "kernels/pointwise_conv_bn.h"
#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using namespace kernels;

struct FusedInputs {
  at::Tensor x, dw_weight, pw_weight;
  DepthwiseConvOptions conv;
  BatchNormArgs bn;
  OutputWeight weight;
  at::Tensor input_map;  // (2, C): x's map, or empty
  BlockSumsLinks links;
};

// The forward: z (the block before its batch norm) is kept for the backward, or the output
// normalised in its place (keeps_normalized_output). Weighted, the outputs are z and its map
// (fused_batch_norm.h), else the block's output.
variable_list forward_fused(AutogradContext* ctx, const FusedInputs& in) {
  const ChannelAffine affine =
      present(in.input_map) ? ChannelAffine{in.input_map[0], in.input_map[1]} : ChannelAffine{};
  DwPwOutput block = native_dw_pw_forward(in.x, in.dw_weight, in.pw_weight, in.conv,
                                          present(in.input_map) ? &affine : nullptr);
  BatchMoments moments;
  const bool normalized = !present(in.weight.row) && keeps_normalized_output(in.bn);
  variable_list out = batch_norm_outputs(ctx, block.z, block.mean, block.var, in.bn, in.weight,
                                         /*keep_z=*/!normalized, &moments);
  if (present(in.links.from)) set_link_mean(in.links.from, moments.mean);
  ctx->save_for_backward({in.x, in.dw_weight, in.pw_weight, in.bn.weight, block.z, moments.mean,
                          moments.invstd, in.bn.bias, in.weight.row, in.input_map});
  ctx->saved_data["index"] = in.weight.index;
  ctx->saved_data["stride"] = in.conv.stride;
  ctx->saved_data["padding"] = in.conv.padding;
  ctx->saved_data["dilation"] = in.conv.dilation;
  ctx->saved_data["sums_from"] = in.links.from;
  ctx->saved_data["sums_to"] = in.links.to;
  ctx->saved_data["normalized"] = normalized;
  return out;
}

// The map of z's gradient: from the output kept in z's place, from the sums the block after left
// in the link where it made this very gradient, else from a pass over z and gy.
NormalizeBackwardMap backward_map(AutogradContext* ctx, const at::Tensor& z, const at::Tensor& grad,
                                  const at::Tensor& gy, const BatchMoments& moments,
                                  const at::Tensor& bn_weight, const at::Tensor& bn_bias,
                                  const OutputWeight& weight, double* w_grad) {
  if (ctx->saved_data["normalized"].toBool()) return normalized_output_backward_map(z, gy, moments);
  const at::Tensor link = ctx->saved_data["sums_from"].toTensor();
  if (present(link))
    if (const c10::optional<GradSums> sums = take_grad_sums(link, grad))
      return output_backward_map(sums->g, sums->g_centered,
                                 static_cast<double>(z.numel() / z.size(1)), moments, bn_weight,
                                 bn_bias, weight, w_grad);
  return output_backward_map(z, gy, moments, bn_weight, bn_bias, weight, w_grad);
}

template <typename T>
variable_list backward_typed(AutogradContext* ctx, const at::Tensor& grad) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor &x = saved[0], &dw_weight = saved[1], &pw_weight = saved[2];
  const at::Tensor &bn_weight = saved[3], &z = saved[4], &mean = saved[5], &invstd = saved[6];
  const ConvGeometry g =
      depthwise_geometry(x, dw_weight, ctx->saved_data["stride"].toInt(),
                         ctx->saved_data["padding"].toInt(), ctx->saved_data["dilation"].toInt());
  const auto& k = nhwc_table<T>();
  const int64_t N = x.size(0), C = x.size(1), outputs = pw_weight.size(0);
  const int64_t taps = g.kernel * g.kernel, pixels = g.out_height * g.out_width;
  const int64_t in_size = g.height * g.width * C, z_size = pixels * outputs;
  const at::Tensor& bn_bias = saved[7];
  const OutputWeight weight{saved[8], ctx->saved_data["index"].toInt()};
  const at::Tensor& input_map = saved[9];
  const at::Tensor gy = grad.contiguous(at::MemoryFormat::ChannelsLast);
  double w_grad = 0.0;
  const NormalizeBackwardMap map =
      backward_map(ctx, z, grad, gy, {mean, invstd}, bn_weight, bn_bias, weight, &w_grad);
  const std::vector<T> a = values_of<T>(map.a), b = values_of<T>(map.b), c0 = values_of<T>(map.c0);
  const std::vector<T> in_scale =
      present(input_map) ? values_of<T>(input_map[0]) : std::vector<T>();
  const std::vector<T> in_offset =
      present(input_map) ? values_of<T>(input_map[1]) : std::vector<T>();
  // An architecture step wants no weight gradients.
  const bool want_x = ctx->needs_input_grad(0), want_dw = ctx->needs_input_grad(1);
  const bool want_pw = ctx->needs_input_grad(2);
  const at::Tensor dw_taps = transposed_weight<T>(dw_weight);
  const at::Tensor pw = pw_weight.contiguous().view({outputs, C});
  at::Tensor gx = want_x || want_dw ? at::empty_like(x) : at::Tensor();
  // Per-sample partials, summed in sample order: the same sums on any number of threads.
  at::Tensor gw_dw = want_dw ? at::zeros({N, taps * C}, x.options()) : at::Tensor();
  at::Tensor gw_pw = want_pw ? at::zeros({N, outputs * C}, x.options()) : at::Tensor();
  DwPwGrads<T> at_zero;  // sample 0's pointers; sample n's are offset from them
  at_zero.x = x.data_ptr<T>();
  at_zero.dw = dw_taps.data_ptr<T>();
  at_zero.pw = pw.data_ptr<T>();
  at_zero.z = z.data_ptr<T>();
  at_zero.gy = gy.data_ptr<T>();
  at_zero.a = a.data();
  at_zero.b = b.data();
  at_zero.c0 = c0.data();
  at_zero.gx = gx.defined() ? gx.data_ptr<T>() : nullptr;
  at_zero.gw_dw = want_dw ? gw_dw.data_ptr<T>() : nullptr;
  at_zero.gw_pw = want_pw ? gw_pw.data_ptr<T>() : nullptr;
  at_zero.in_scale = in_scale.empty() ? nullptr : in_scale.data();
  at_zero.in_offset = in_offset.empty() ? nullptr : in_offset.data();
  // The sums of the block before (grad_sums_link.h), per sample: sample order on any threads.
  const at::Tensor sums_to = ctx->saved_data["sums_to"].toTensor();
  const std::vector<T> shift =
      values_of<T>(present(sums_to) && want_x ? link_mean(sums_to) : std::vector<double>());
  std::vector<double> sums(shift.empty() ? 0 : 2 * N * C, 0.0);
  const int64_t scratch = nhwc_block_backward_scratch_elements(g, C, outputs);
  for_each_sample<T>(N, scratch, [&](int64_t n, T* scratch_memory) {
    DwPwGrads<T> sample = at_zero;
    sample.x += n * in_size;
    sample.z += n * z_size;
    sample.gy += n * z_size;
    if (sample.gx) sample.gx += n * in_size;
    if (sample.gw_dw) sample.gw_dw += n * taps * C;
    if (sample.gw_pw) sample.gw_pw += n * outputs * C;
    if (!shift.empty()) {
      sample.x_mean = shift.data();
      sample.sum_gx = &sums[2 * n * C];
      sample.sum_gx_xc = &sums[(2 * n + 1) * C];
    }
    k.dw_pw_backward(sample, C, outputs, g, scratch_memory);
  });
  if (!shift.empty()) {
    const ChannelSums in_sums = reduce_chunks(sums, N, C);
    publish_grad_sums(sums_to, {in_sums.first, in_sums.second}, gx);
  }
  return {want_x ? gx : at::Tensor(),
          want_dw ? gw_dw.sum(0).view({taps, C}).t().reshape(dw_weight.sizes()) : at::Tensor(),
          want_pw ? gw_pw.sum(0).view(pw_weight.sizes()) : at::Tensor(),
          at::Tensor(),
          weight_grad_of(map, bn_weight),
          bias_grad_of(map, ctx->saved_data["has_bias"].toBool(), x.scalar_type()),
          at::Tensor(),
          at::Tensor(),
          at::Tensor(),
          at::Tensor(),
          output_weight_grad(weight, ctx->needs_input_grad(7), w_grad),  // row: tensor input 7
          at::Tensor(),
          at::Tensor(),
          at::Tensor(),
          at::Tensor()};
}

FusedInputs checked(const at::Tensor& x, const at::Tensor& dw_weight, const at::Tensor& pw_weight,
                    const DepthwiseConvOptions& conv, const BatchNormArgs& bn,
                    const OutputWeight& weight, const at::Tensor& input_map,
                    const BlockSumsLinks& links) {
  const std::string what = "depthwise + pointwise conv + batch norm";
  if (!nhwc_float_cpu(x)) throw Error(what + ": expected a channels-last float/double CPU input");
  const ConvGeometry g = depthwise_geometry(x, dw_weight, conv.stride, conv.padding, conv.dilation);
  if (pw_weight.dim() != 4 || pw_weight.size(1) != x.size(1) || pw_weight.size(2) != 1 ||
      pw_weight.size(3) != 1 || pw_weight.scalar_type() != x.scalar_type())
    throw Error(what + ": expected a (outputs, C, 1, 1) pointwise weight of x's dtype");
  check_batch_norm_args(bn, pw_weight.size(0), x.size(0) * g.out_height * g.out_width, what);
  check_output_weight(weight, what);
  if (present(input_map)) {
    if (input_map.dim() != 2 || input_map.size(0) != 2 || input_map.size(1) != x.size(1) ||
        input_map.scalar_type() != x.scalar_type())
      throw Error(what + ": expected an input map of shape (2, C) in x's dtype");
    // The backward masks the ReLU with the padded mapped input, which the gather form keeps.
    if (g.stride != 1 || 2 * g.padding != (g.kernel - 1) * g.dilation)
      throw Error(what + ": an input map needs a stride-1 conv that keeps the size");
  }
  return {x.contiguous(at::MemoryFormat::ChannelsLast),
          dw_weight,
          pw_weight,
          conv,
          bn,
          weight,
          present(input_map) ? input_map.contiguous() : input_map,
          links};
}

struct DwPwBNFunction : public torch::autograd::Function<DwPwBNFunction> {
  // The conv options travel as their fields: autograd functions take tensors and scalars.
  // row (empty: unweighted) and index: the OutputWeight; input_map (empty: none): x's map.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x,
                               const at::Tensor& dw_weight, const at::Tensor& pw_weight,
                               std::vector<int64_t> conv, const at::Tensor& bn_weight,
                               const at::Tensor& bn_bias, const at::Tensor& running_mean,
                               const at::Tensor& running_var, double momentum, double eps,
                               const at::Tensor& row, int64_t index, const at::Tensor& input_map,
                               const at::Tensor& sums_from, const at::Tensor& sums_to) {
    const FusedInputs in = checked(
        x, dw_weight, pw_weight, {conv[0], conv[1], conv[2], /*relu_input=*/true},
        {bn_weight, bn_bias, running_mean, running_var, momentum, eps}, {row, index}, input_map,
        {present(sums_from) ? sums_from : at::Tensor(), present(sums_to) ? sums_to : at::Tensor()});
    ctx->saved_data["has_bias"] = present(bn_bias);
    return forward_fused(ctx, in);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return grads[0].scalar_type() == at::kFloat ? backward_typed<float>(ctx, grads[0])
                                                : backward_typed<double>(ctx, grads[0]);
  }
};

variable_list apply_fused(const at::Tensor& x, const at::Tensor& dw_weight,
                          const at::Tensor& pw_weight, const DepthwiseConvOptions& options,
                          const BatchNormArgs& bn, const OutputWeight& weight,
                          const at::Tensor& input_map = {}, const BlockSumsLinks& links = {}) {
  return DwPwBNFunction::apply(
      x, dw_weight, pw_weight,
      std::vector<int64_t>{options.stride, options.padding, options.dilation},
      or_empty(bn.weight, x), or_empty(bn.bias, x), or_empty(bn.running_mean, x),
      or_empty(bn.running_var, x), bn.momentum, bn.eps, or_empty(weight.row, x), weight.index,
      or_empty(input_map, x), or_empty(links.from, x), or_empty(links.to, x));
}

// Whether the fused function takes x (else the separate native ops).
bool fuses(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x,
           const DepthwiseConvOptions& options) {
  // A strided conv's output is a quarter of its input: storing it costs less than making it
  // again in the backward (measured: dil_conv_5x5 at stride 2, 1.49 against 1.74 ms).
  return nhwc_float_cpu(x) && uses_batch_statistics(bn) && at::GradMode::is_enabled() &&
         options.stride == 1;
}

}  // namespace

at::Tensor native_dw_pw_bn_train(const at::Tensor& x, const at::Tensor& dw_weight,
                                 const at::Tensor& pw_weight, const DepthwiseConvOptions& options,
                                 const at::Tensor& bn_weight, const at::Tensor& bn_bias,
                                 const at::Tensor& running_mean, const at::Tensor& running_var,
                                 double momentum, double eps) {
  return apply_fused(x, dw_weight, pw_weight, options,
                     {bn_weight, bn_bias, running_mean, running_var, momentum, eps}, {})[0];
}

at::Tensor dw_pw_batch_norm(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x,
                            const at::Tensor& dw_weight, const at::Tensor& pw_weight,
                            const DepthwiseConvOptions& options) {
  if (!fuses(bn, x, options)) {
    DepthwiseConvOptions relu_conv = options;
    relu_conv.relu_input = true;
    const at::Tensor u = native_depthwise_conv2d(x, dw_weight, relu_conv);
    return pointwise_conv_batch_norm(bn, u, pw_weight, /*relu_input=*/false);
  }
  return apply_fused(x, dw_weight, pw_weight, options, training_args(bn), {})[0];
}

kernels::WeightedOutput dw_pw_batch_norm_weighted(
    torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x, const at::Tensor& dw_weight,
    const at::Tensor& pw_weight, const DepthwiseConvOptions& options,
    const kernels::OutputWeight& weight, const at::Tensor& input_map, const BlockSumsLinks& links) {
  if (!fuses(bn, x, options)) {
    if (input_map.defined())
      throw Error("depthwise + pointwise conv + batch norm: an input map needs the fused function");
    return {dw_pw_batch_norm(bn, x, dw_weight, pw_weight, options), {}};
  }
  const variable_list out =
      apply_fused(x, dw_weight, pw_weight, options, training_args(bn), weight, input_map, links);
  return {out[0], out.size() > 1 ? out[1] : at::Tensor()};
}

}  // namespace datanas
