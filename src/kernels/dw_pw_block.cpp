#include "kernels/dw_pw_block.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <vector>

#include "kernels/batch_norm_math.h"
#include "kernels/layout.h"
#include "kernels/sample_moments.h"
#include "util/error.h"

namespace datanas {
namespace {

// g defined: z is not stored, and the gradient sums are gathered instead.
template <typename T>
DwPwOutput forward_typed(const at::Tensor& x, const at::Tensor& dw_weight,
                         const at::Tensor& pw_weight, const kernels::ConvGeometry& g,
                         const ChannelAffine* input_affine, const at::Tensor& grad) {
  const auto& k = kernels::nhwc_table<T>();
  const int64_t N = x.size(0), C = x.size(1), outputs = pw_weight.size(0);
  const at::Tensor taps = kernels::transposed_weight<T>(dw_weight);
  const at::Tensor pwt = kernels::transposed_weight<T>(pw_weight);
  std::vector<T> in_scale, in_offset;
  if (input_affine) {
    in_scale = kernels::values_of<T>(input_affine->scale);
    in_offset = kernels::values_of<T>(input_affine->offset);
  }
  const bool measure = grad.defined();
  DwPwOutput out;
  if (!measure)
    out.z = at::empty({N, outputs, g.out_height, g.out_width},
                      x.options().memory_format(at::MemoryFormat::ChannelsLast));
  kernels::SampleMoments<T> moments(N, outputs, measure);
  const int64_t in = g.height * g.width * C, out_size = g.out_height * g.out_width * outputs;
  const T* xp = x.data_ptr<T>();
  const T* wp = taps.data_ptr<T>();
  const T* pp = pwt.data_ptr<T>();
  const T* sp = input_affine ? in_scale.data() : nullptr;
  const T* op = input_affine ? in_offset.data() : nullptr;
  const T* gp = measure ? grad.data_ptr<T>() : nullptr;
  T* zp = measure ? nullptr : out.z.data_ptr<T>();
  kernels::for_each_sample<T>(
      N, kernels::nhwc_block_scratch_elements(g, C, outputs), [&](int64_t n, T* scratch) {
        k.dw_pw_forward(xp + n * in, wp, pp, zp ? zp + n * out_size : nullptr, C, outputs, g, sp,
                        op, scratch, moments.of(n, measure ? gp + n * out_size : nullptr));
      });
  static_cast<BlockMoments&>(out) =
      moments.combine(g.out_height * g.out_width, x.options().dtype(at::kDouble));
  return out;
}

DwPwOutput fused_block(const at::Tensor& input, const at::Tensor& dw_weight,
                       const at::Tensor& pw_weight, const DepthwiseConvOptions& o,
                       const ChannelAffine* input_affine, const at::Tensor& grad) {
  if (!can_fuse_dw_pw(input))
    throw Error("dw-pw block: expected a channels-last float/double CPU input, autograd off");
  const at::Tensor x = input.contiguous(at::MemoryFormat::ChannelsLast);
  const kernels::ConvGeometry g = depthwise_geometry(x, dw_weight, o.stride, o.padding, o.dilation);
  if (pw_weight.dim() != 4 || pw_weight.size(1) != x.size(1) || pw_weight.size(2) != 1 ||
      pw_weight.size(3) != 1 || pw_weight.scalar_type() != x.scalar_type())
    throw Error("dw-pw block: expected a (outputs, C, 1, 1) pointwise weight of x's dtype");
  if (input_affine &&
      (input_affine->scale.numel() != x.size(1) || input_affine->offset.numel() != x.size(1)))
    throw Error("dw-pw block: expected an input affine map of one value per channel");
  at::Tensor gc;
  if (grad.defined())
    gc = kernels::measured_gradient(
        grad, {x.size(0), pw_weight.size(0), g.out_height, g.out_width}, x.scalar_type(),
        "dw-pw block: expected a gradient of the block output's shape and dtype");
  if (x.scalar_type() == at::kFloat)
    return forward_typed<float>(x, dw_weight, pw_weight, g, input_affine, gc);
  return forward_typed<double>(x, dw_weight, pw_weight, g, input_affine, gc);
}

}  // namespace

bool can_fuse_dw_pw(const at::Tensor& x) {
  return !at::GradMode::is_enabled() && kernels::nhwc_float_cpu(x);
}

DwPwOutput native_dw_pw_forward(const at::Tensor& x, const at::Tensor& dw_weight,
                                const at::Tensor& pw_weight, const DepthwiseConvOptions& options,
                                const ChannelAffine* input_affine) {
  return fused_block(x, dw_weight, pw_weight, options, input_affine, at::Tensor());
}

DwPwOutput native_dw_pw_measure(const at::Tensor& x, const at::Tensor& dw_weight,
                                const at::Tensor& pw_weight, const DepthwiseConvOptions& options,
                                const ChannelAffine* input_affine, const at::Tensor& grad) {
  if (!grad.defined()) throw Error("dw-pw block: measuring needs a gradient");
  return fused_block(x, dw_weight, pw_weight, options, input_affine, grad);
}

}  // namespace datanas
