#include "space/op_blocks.h"

#include <ATen/ATen.h>

#include "kernels/batch_norm.h"
#include "kernels/channel_parts.h"
#include "kernels/dw_pw_block.h"
#include "kernels/dw_pw_bn.h"
#include "kernels/factorized_reduce.h"
#include "kernels/grad_sums_link.h"
#include "kernels/pointwise_conv_bn.h"
#include "kernels/pool.h"
#include "kernels/pool_bn.h"

namespace datanas {
namespace nn = torch::nn;

nn::BatchNorm2d make_batch_norm(int64_t channels, bool affine) {
  return nn::BatchNorm2d(nn::BatchNormOptions(channels).affine(affine));
}

static nn::Conv2d make_conv(int64_t c_in, int64_t c_out, int64_t kernel, int64_t stride,
                            int64_t padding, int64_t dilation = 1, int64_t groups = 1) {
  return nn::Conv2d(nn::Conv2dOptions(c_in, c_out, kernel)
                        .stride(stride)
                        .padding(padding)
                        .dilation(dilation)
                        .groups(groups)
                        .bias(false));
}

ReLUConvBNImpl::ReLUConvBNImpl(int64_t c_in, int64_t c_out, int64_t kernel, int64_t stride,
                               int64_t padding, bool affine, KernelBackend kernels)
    : kernels_(kernels),
      conv_(register_module("conv", make_conv(c_in, c_out, kernel, stride, padding))),
      bn_(register_module("bn", make_batch_norm(c_out, affine))) {}

std::optional<PointwiseHead> ReLUConvBNImpl::pointwise_head(const at::Tensor& x) {
  const auto& o = conv_->options;
  const bool pointwise = (*o.kernel_size())[0] == 1 && (*o.kernel_size())[1] == 1 &&
                         (*o.stride())[0] == 1 && (*o.stride())[1] == 1;
  if (!pointwise || !use_native_kernels(kernels_, x)) return std::nullopt;
  return PointwiseHead{bn_.get(), conv_->weight};
}

at::Tensor ReLUConvBNImpl::forward(const at::Tensor& x) {
  if (auto head = pointwise_head(x))
    return pointwise_conv_batch_norms({*head}, {x}, /*relu_input=*/true)[0];
  return batch_norm_forward(*bn_, conv_(at::relu(x)), kernels_);
}

std::vector<at::Tensor> relu_conv_bn_shared(const std::vector<ReLUConvBNImpl*>& blocks,
                                            const std::vector<at::Tensor>& parts) {
  std::vector<PointwiseHead> heads;
  std::vector<size_t> fused;
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (auto head = blocks[i]->pointwise_head(parts[0])) {
      heads.push_back(*head);
      fused.push_back(i);
    }
  }
  std::vector<at::Tensor> ys(blocks.size());
  if (!heads.empty()) {
    std::vector<at::Tensor> fused_ys =
        pointwise_conv_batch_norms(heads, parts, /*relu_input=*/true);
    for (size_t j = 0; j < fused.size(); ++j) ys[fused[j]] = fused_ys[j];
  }
  at::Tensor x;  // joined once, for the blocks that need one tensor
  for (size_t i = 0; i < blocks.size(); ++i) {
    if (ys[i].defined()) continue;
    if (!x.defined()) x = kernels::joined_channels(parts);
    ys[i] = blocks[i]->forward(x);
  }
  return ys;
}

DilConvImpl::DilConvImpl(int64_t c_in, int64_t c_out, int64_t kernel, int64_t stride,
                         int64_t padding, int64_t dilation, bool affine, KernelBackend kernels)
    : stride_(stride),
      padding_(padding),
      dilation_(dilation),
      kernels_(kernels),
      depthwise_(register_module("depthwise",
                                 make_conv(c_in, c_in, kernel, stride, padding, dilation, c_in))),
      pointwise_(register_module("pointwise", make_conv(c_in, c_out, 1, 1, 0))),
      bn_(register_module("bn", make_batch_norm(c_out, affine))) {}

at::Tensor DilConvImpl::forward(const at::Tensor& x) {
  if (!use_native_kernels(kernels_, x)) return bn_(pointwise_(depthwise_(at::relu(x))));
  if (can_fuse(x)) {
    PendingBatchNorm out = forward_pending(x, nullptr);
    return apply_channel_affine(std::move(out.z), out.affine);
  }
  return dw_pw_batch_norm(*bn_, x, depthwise_->weight, pointwise_->weight,
                          {stride_, padding_, dilation_, /*relu_input=*/true});
}

bool DilConvImpl::can_fuse(const at::Tensor& x) {
  return use_native_kernels(kernels_, x) && can_fuse_dw_pw(x) && uses_batch_statistics(*bn_);
}

PendingBatchNorm DilConvImpl::forward_pending(const at::Tensor& x,
                                              const ChannelAffine* input_affine) {
  DwPwOutput block =
      native_dw_pw_forward(x, depthwise_->weight, pointwise_->weight,
                           {stride_, padding_, dilation_, /*relu_input=*/true}, input_affine);
  ChannelAffine affine = batch_norm_affine(*bn_, block.mean, block.var, block.count);
  return {std::move(block.z), std::move(affine)};
}

double DilConvImpl::measure_pending(const at::Tensor& x, const ChannelAffine* input_affine,
                                    const at::Tensor& grad) {
  const DwPwOutput block =
      native_dw_pw_measure(x, depthwise_->weight, pointwise_->weight,
                           {stride_, padding_, dilation_, /*relu_input=*/true}, input_affine, grad);
  return measured_dot(block, batch_norm_affine(*bn_, block.mean, block.var, block.count));
}

kernels::WeightedOutput DilConvImpl::forward_weighted(const at::Tensor& x,
                                                      const kernels::OutputWeight& weight,
                                                      const at::Tensor& input_map,
                                                      const BlockSumsLinks& links) {
  if (!input_map.defined() && (!use_native_kernels(kernels_, x) || can_fuse(x)))
    return {forward(x), {}};
  return dw_pw_batch_norm_weighted(*bn_, x, depthwise_->weight, pointwise_->weight,
                                   {stride_, padding_, dilation_, /*relu_input=*/true}, weight,
                                   input_map, links);
}

SepConvImpl::SepConvImpl(int64_t c_in, int64_t c_out, int64_t kernel, int64_t stride,
                         int64_t padding, bool affine, KernelBackend kernels)
    : first_(register_module("first",
                             DilConv(c_in, c_in, kernel, stride, padding, 1, affine, kernels))),
      second_(register_module("second",
                              DilConv(c_in, c_out, kernel, 1, padding, 1, affine, kernels))) {}

at::Tensor SepConvImpl::forward(const at::Tensor& x) {
  if (!can_fuse(x)) return chained(x, {}).z;
  // The first block's batch norm is applied on the way into the second block's depthwise conv.
  const PendingBatchNorm first = first_->forward_pending(x, nullptr);
  PendingBatchNorm second = second_->forward_pending(first.z, &first.affine);
  return apply_channel_affine(std::move(second.z), second.affine);
}

double SepConvImpl::measure(const at::Tensor& x, const at::Tensor& grad) {
  const PendingBatchNorm first = first_->forward_pending(x, nullptr);
  return second_->measure_pending(first.z, &first.affine, grad);
}

kernels::WeightedOutput SepConvImpl::forward_weighted(const at::Tensor& x,
                                                      const kernels::OutputWeight& weight) {
  if (can_fuse(x)) return {forward(x), {}};
  return chained(x, weight);
}

kernels::WeightedOutput SepConvImpl::chained(const at::Tensor& x,
                                             const kernels::OutputWeight& weight) {
  // first.map is undefined where the first block could not leave its batch norm (first.z is
  // then its output), and the second block runs on first.z as it is. Else the second block's
  // backward takes the first's batch-norm gradient sums (kernels/grad_sums_link.h).
  const at::Tensor link = kernels::make_grad_sums_link(x.size(1));
  const kernels::WeightedOutput first =
      first_->forward_weighted(x, kernels::unit_output_weight(x), {}, {link, {}});
  return second_->forward_weighted(first.z, weight, first.map,
                                   {{}, first.map.defined() ? link : at::Tensor()});
}

FactorizedReduceImpl::FactorizedReduceImpl(int64_t c_in, int64_t c_out, bool affine,
                                           KernelBackend kernels)
    : kernels_(kernels),
      even_(register_module("even", make_conv(c_in, c_out / 2, 1, 2, 0))),
      odd_(register_module("odd", make_conv(c_in, c_out - c_out / 2, 1, 2, 0))),
      bn_(register_module("bn", make_batch_norm(c_out, affine))) {}

at::Tensor FactorizedReduceImpl::forward_parts(const std::vector<at::Tensor>& parts) {
  bool native = true;
  for (const at::Tensor& part : parts)
    native = native && use_native_kernels(kernels_, part) && can_reduce_natively(part);
  if (!native || parts.size() == 1) return forward(kernels::joined_channels(parts));
  return batch_norm_forward(*bn_, native_factorized_reduce(parts, even_->weight, odd_->weight),
                            kernels_);
}

at::Tensor FactorizedReduceImpl::forward(const at::Tensor& x) {
  if (use_native_kernels(kernels_, x) && can_reduce_natively(x))
    return batch_norm_forward(*bn_, native_factorized_reduce(x, even_->weight, odd_->weight),
                              kernels_);
  // LibTorch 1.13's oneDNN backward of a stride-2 1x1 conv on a channels-last CPU input corrupts
  // the heap after some sequences of shapes, so its convs run on an NCHW copy there.
  const bool via_nchw =
      x.is_cpu() && x.dim() == 4 && x.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
  at::Tensor activated = at::relu(via_nchw ? x.contiguous() : x);
  // The shifted grid starts at (1, 1); pad bottom/right by one so it covers as many pixels as
  // the even grid on odd sizes too.
  at::Tensor shifted = at::constant_pad_nd(activated, {0, 1, 0, 1}, 0).slice(2, 1).slice(3, 1);
  at::Tensor y = at::cat({even_(activated), odd_(shifted)}, 1);
  if (via_nchw) y = y.contiguous(at::MemoryFormat::ChannelsLast);
  return batch_norm_forward(*bn_, y, kernels_);
}

PoolImpl::PoolImpl(bool max, int64_t channels, int64_t stride, bool with_bn, KernelBackend kernels)
    : max_(max), stride_(stride), kernels_(kernels) {
  if (with_bn) bn_ = register_module("bn", make_batch_norm(channels, false));
}

at::Tensor PoolImpl::forward(const at::Tensor& x) {
  if (use_native_kernels(kernels_, x)) {
    if (bn_) return pool_batch_norm(*bn_, x, stride_, max_);
    return max_ ? native_max_pool3x3(x, stride_) : native_avg_pool3x3(x, stride_);
  }
  at::Tensor y = max_ ? at::max_pool2d(x, {3, 3}, {stride_, stride_}, {1, 1})
                      : at::avg_pool2d(x, {3, 3}, {stride_, stride_}, {1, 1},
                                       /*ceil_mode=*/false, /*count_include_pad=*/false);
  return bn_ ? bn_(y) : y;
}

kernels::WeightedOutput PoolImpl::forward_weighted(const at::Tensor& x,
                                                   const kernels::OutputWeight& weight) {
  if (!use_native_kernels(kernels_, x) || !bn_) return {forward(x), {}};
  return pool_batch_norm_weighted(*bn_, x, stride_, max_, weight);
}

bool PoolImpl::can_measure(const at::Tensor& x) {
  return use_native_kernels(kernels_, x) && bn_ && uses_batch_statistics(*bn_) &&
         can_measure_pool(x);
}

double PoolImpl::measure(const at::Tensor& x, const at::Tensor& grad) {
  const BlockMoments pooled = native_pool_measure(x, stride_, max_, grad);
  return measured_dot(pooled, batch_norm_affine(*bn_, pooled.mean, pooled.var, pooled.count));
}

at::Tensor ZeroImpl::forward(const at::Tensor& x) {
  if (stride_ == 1) return at::zeros_like(x);
  return at::zeros_like(x.slice(2, 0, c10::nullopt, stride_).slice(3, 0, c10::nullopt, stride_));
}

}  // namespace datanas
