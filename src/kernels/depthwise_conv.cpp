#include "kernels/depthwise_conv.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/layout.h"
#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <typename T>
void forward_planes(const at::Tensor& x, const at::Tensor& w, at::Tensor& y,
                    const kernels::ConvGeometry& g, bool relu) {
  const auto& k = kernels::kernel_table<T>();
  const int64_t C = x.size(1), in = g.height * g.width, out = g.out_height * g.out_width;
  const int64_t taps = g.kernel * g.kernel;
  const T* xp = x.data_ptr<T>();
  const T* wp = w.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  kernels::for_each_plane<T>(x.size(0) * C, in + out, kernels::conv_scratch_elements(g),
                             [&](int64_t plane, T* scratch) {
                               k.conv_forward(xp + plane * in, wp + (plane % C) * taps,
                                              yp + plane * out, g, relu, scratch);
                             });
}

// gw_planes undefined: no weight gradient.
template <typename T>
void backward_planes(const at::Tensor& x, const at::Tensor& w, const at::Tensor& gy, at::Tensor& gx,
                     at::Tensor& gw_planes, const kernels::ConvGeometry& g, bool relu) {
  const auto& k = kernels::kernel_table<T>();
  const int64_t C = x.size(1), in = g.height * g.width, out = g.out_height * g.out_width;
  const int64_t taps = g.kernel * g.kernel;
  const T* xp = x.data_ptr<T>();
  const T* wp = w.data_ptr<T>();
  const T* gyp = gy.data_ptr<T>();
  T* gxp = gx.data_ptr<T>();
  T* gwp = gw_planes.defined() ? gw_planes.data_ptr<T>() : nullptr;
  kernels::for_each_plane<T>(
      x.size(0) * C, 2 * in + out, kernels::conv_scratch_elements(g),
      [&](int64_t plane, T* scratch) {
        k.conv_backward(xp + plane * in, wp + (plane % C) * taps, gyp + plane * out,
                        gxp + plane * in, gwp ? gwp + plane * taps : nullptr, g, relu, scratch);
      });
}

// NHWC: one sample per task, the weight tap-major (k*k, C) so channels are contiguous.
template <typename T>
void forward_nhwc(const at::Tensor& x, const at::Tensor& w, at::Tensor& y,
                  const kernels::ConvGeometry& g, bool relu) {
  const auto& k = kernels::nhwc_table<T>();
  const int64_t C = x.size(1), in = g.height * g.width * C, out = g.out_height * g.out_width * C;
  const at::Tensor taps = kernels::transposed_weight<T>(w);
  const T* xp = x.data_ptr<T>();
  const T* wp = taps.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  kernels::for_each_sample<T>(x.size(0), kernels::nhwc_conv_scratch_elements(g, C),
                              [&](int64_t n, T* scratch) {
                                k.conv_forward(xp + n * in, wp, yp + n * out, C, g, relu, scratch);
                              });
}

// Returns the weight gradient (C, 1, k, k), or an undefined tensor without `weight_grad`;
// per-sample partials keep the sum thread-independent.
template <typename T>
at::Tensor backward_nhwc(const at::Tensor& x, const at::Tensor& w, const at::Tensor& gy,
                         at::Tensor& gx, const kernels::ConvGeometry& g, bool relu,
                         bool weight_grad) {
  const auto& k = kernels::nhwc_table<T>();
  const int64_t C = x.size(1), in = g.height * g.width * C, out = g.out_height * g.out_width * C;
  const int64_t taps = g.kernel * g.kernel;
  const at::Tensor w_taps = kernels::transposed_weight<T>(w);
  at::Tensor gw_samples = weight_grad ? at::zeros({x.size(0), taps, C}, x.options()) : at::Tensor();
  const T* xp = x.data_ptr<T>();
  const T* wp = w_taps.data_ptr<T>();
  const T* gyp = gy.data_ptr<T>();
  T* gxp = gx.data_ptr<T>();
  T* gwp = weight_grad ? gw_samples.data_ptr<T>() : nullptr;
  kernels::for_each_sample<T>(
      x.size(0), kernels::nhwc_conv_scratch_elements(g, C), [&](int64_t n, T* scratch) {
        k.conv_backward(xp + n * in, wp, gyp + n * out, gxp + n * in,
                        gwp ? gwp + n * taps * C : nullptr, C, g, relu, scratch);
      });
  return weight_grad ? gw_samples.sum(0).t().reshape(w.sizes()) : at::Tensor();
}

struct DepthwiseConvFunction : public torch::autograd::Function<DepthwiseConvFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            int64_t stride, int64_t padding, int64_t dilation, bool relu) {
    const at::MemoryFormat layout = kernels::layout_of(input);
    at::Tensor x = input.contiguous(layout), w = weight.contiguous();
    const kernels::ConvGeometry g = depthwise_geometry(x, w, stride, padding, dilation);
    at::Tensor y = at::empty({x.size(0), x.size(1), g.out_height, g.out_width},
                             x.options().memory_format(layout));
    const bool f32 = x.scalar_type() == at::kFloat;
    if (kernels::is_nhwc(layout)) {
      f32 ? forward_nhwc<float>(x, w, y, g, relu) : forward_nhwc<double>(x, w, y, g, relu);
    } else {
      f32 ? forward_planes<float>(x, w, y, g, relu) : forward_planes<double>(x, w, y, g, relu);
    }
    ctx->save_for_backward({x, w});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["relu"] = relu;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& w = saved[1];
    const kernels::ConvGeometry g =
        depthwise_geometry(x, w, ctx->saved_data["stride"].toInt(),
                           ctx->saved_data["padding"].toInt(), ctx->saved_data["dilation"].toInt());
    const bool relu = ctx->saved_data["relu"].toBool();
    const at::MemoryFormat layout = kernels::layout_of(x);
    at::Tensor gy = grads[0].contiguous(layout);
    at::Tensor gx = at::empty_like(x);
    const bool f32 = x.scalar_type() == at::kFloat;
    // An architecture step asks autograd for the alpha gradients alone: no weight gradient.
    const bool weight_grad = ctx->needs_input_grad(1);
    at::Tensor gw;
    if (kernels::is_nhwc(layout)) {
      gw = f32 ? backward_nhwc<float>(x, w, gy, gx, g, relu, weight_grad)
               : backward_nhwc<double>(x, w, gy, gx, g, relu, weight_grad);
    } else {
      at::Tensor gw_planes =
          weight_grad ? at::zeros({x.size(0), x.size(1), g.kernel * g.kernel}, x.options())
                      : at::Tensor();
      if (f32) {
        backward_planes<float>(x, w, gy, gx, gw_planes, g, relu);
      } else {
        backward_planes<double>(x, w, gy, gx, gw_planes, g, relu);
      }
      if (weight_grad) gw = gw_planes.sum(0).view(w.sizes());
    }
    return {gx, gw, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

kernels::ConvGeometry depthwise_geometry(const at::Tensor& x, const at::Tensor& w, int64_t stride,
                                         int64_t padding, int64_t dilation) {
  if (x.dim() != 4) throw Error("depthwise conv: expected a 4-D (N, C, H, W) input");
  if (w.dim() != 4 || w.size(0) != x.size(1) || w.size(1) != 1 || w.size(2) != w.size(3))
    throw Error("depthwise conv: expected a (C, 1, k, k) weight for C input channels");
  if (w.size(2) > 7 || stride < 1 || dilation < 1 || padding < 0)
    throw Error("depthwise conv: expected k <= 7, stride >= 1, dilation >= 1, padding >= 0");
  if (w.scalar_type() != x.scalar_type())
    throw Error("depthwise conv: input and weight must have the same dtype");
  kernels::ConvGeometry g;
  g.height = x.size(2);
  g.width = x.size(3);
  g.kernel = w.size(2);
  g.stride = stride;
  g.padding = padding;
  g.dilation = dilation;
  const int64_t reach = dilation * (g.kernel - 1);
  g.out_height = (g.height + 2 * padding - reach - 1) / stride + 1;
  g.out_width = (g.width + 2 * padding - reach - 1) / stride + 1;
  if (g.out_height < 1 || g.out_width < 1) throw Error("depthwise conv: input smaller than kernel");
  return g;
}

at::Tensor native_depthwise_conv2d(const at::Tensor& x, const at::Tensor& weight,
                                   const DepthwiseConvOptions& o) {
  return DepthwiseConvFunction::apply(x, weight, o.stride, o.padding, o.dilation, o.relu_input);
}

}  // namespace datanas
