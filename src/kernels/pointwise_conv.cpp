#include "kernels/pointwise_conv.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/layout.h"
#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t kChunk = 1024;  // pixels of one sample per task

// y = w x for every sample, w (outputs x inputs).
template <typename T>
void apply_planes(const at::Tensor& x, const at::Tensor& w, at::Tensor& y) {
  const auto& k = kernels::kernel_table<T>();
  const int64_t N = x.size(0), inputs = w.size(1), outputs = w.size(0);
  const int64_t P = x.size(2) * x.size(3), chunks = (P + kChunk - 1) / kChunk;
  const T* xp = x.data_ptr<T>();
  const T* wp = w.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  kernels::for_each_plane<T>(N * chunks, std::min(P, kChunk) * (inputs + outputs), 0,
                             [&](int64_t task, T*) {
                               const int64_t n = task / chunks, begin = (task % chunks) * kChunk;
                               k.pointwise(xp + n * inputs * P, wp, yp + n * outputs * P, inputs,
                                           outputs, P, begin, std::min(P, begin + kChunk));
                             });
}

template <typename T>
at::Tensor weight_grad(const at::Tensor& x, const at::Tensor& gy, int64_t outputs) {
  const auto& k = kernels::kernel_table<T>();
  const int64_t N = x.size(0), inputs = x.size(1);
  const int64_t P = x.size(2) * x.size(3), chunks = (P + kChunk - 1) / kChunk;
  at::Tensor partial = at::zeros({N * chunks, outputs * inputs}, x.options());
  const T* xp = x.data_ptr<T>();
  const T* gp = gy.data_ptr<T>();
  T* pp = partial.data_ptr<T>();
  kernels::for_each_plane<T>(
      N * chunks, std::min(P, kChunk) * (inputs + outputs), 0, [&](int64_t task, T*) {
        const int64_t n = task / chunks, begin = (task % chunks) * kChunk;
        k.pointwise_wgrad(xp + n * inputs * P, gp + n * outputs * P, pp + task * outputs * inputs,
                          inputs, outputs, P, begin, std::min(P, begin + kChunk));
      });
  return partial.sum(0).view({outputs, inputs, 1, 1});
}

// NHWC: x is a (P, inputs) matrix of P = N H W pixels; y = a(x) wt for wt (inputs x outputs),
// a = relu with `relu`; y is zeroed where a defined `gate` (laid out like y) is <= 0.
template <typename T>
void apply_nhwc(const at::Tensor& x, const at::Tensor& wt, at::Tensor& y, bool relu,
                const at::Tensor& gate) {
  const auto& k = kernels::nhwc_table<T>();
  const int64_t inputs = wt.size(0), outputs = wt.size(1);
  const T* xp = x.data_ptr<T>();
  const T* wp = wt.data_ptr<T>();
  const T* gp = gate.defined() ? gate.data_ptr<T>() : nullptr;
  T* yp = y.data_ptr<T>();
  kernels::for_each_pixel_chunk(x.numel() / inputs, kChunk, [&](int64_t, int64_t b, int64_t e) {
    k.pointwise(xp, wp, yp, inputs, outputs, b, e, relu, gp);
  });
}

template <typename T>
at::Tensor weight_grad_nhwc(const at::Tensor& x, const at::Tensor& gy, int64_t outputs, bool relu) {
  const auto& k = kernels::nhwc_table<T>();
  const int64_t inputs = x.size(1), P = x.numel() / inputs;
  at::Tensor partial = at::zeros({(P + kChunk - 1) / kChunk, outputs * inputs}, x.options());
  const T* xp = x.data_ptr<T>();
  const T* gp = gy.data_ptr<T>();
  T* pp = partial.data_ptr<T>();
  kernels::for_each_pixel_chunk(P, kChunk, [&](int64_t task, int64_t b, int64_t e) {
    k.pointwise_wgrad(xp, gp, pp + task * outputs * inputs, inputs, outputs, b, e, relu);
  });
  return partial.sum(0).view({outputs, inputs, 1, 1});
}

struct PointwiseConvFunction : public torch::autograd::Function<PointwiseConvFunction> {
  // relu (NHWC only): the conv of relu(input), without materialising relu(input).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            bool relu) {
    if (input.dim() != 4 || weight.dim() != 4 || weight.size(1) != input.size(1) ||
        weight.size(2) != 1 || weight.size(3) != 1)
      throw Error("pointwise conv: expected NCHW input and a (Co, Ci, 1, 1) weight");
    if (weight.scalar_type() != input.scalar_type())
      throw Error("pointwise conv: input and weight must have the same dtype");
    const at::MemoryFormat layout = kernels::layout_of(input);
    at::Tensor x = input.contiguous(layout), w = weight.contiguous().view({weight.size(0), -1});
    at::Tensor y =
        at::empty({x.size(0), w.size(0), x.size(2), x.size(3)}, x.options().memory_format(layout));
    const bool f32 = x.scalar_type() == at::kFloat;
    if (kernels::is_nhwc(layout)) {
      const at::Tensor wt = w.t().contiguous();
      f32 ? apply_nhwc<float>(x, wt, y, relu, {}) : apply_nhwc<double>(x, wt, y, relu, {});
    } else {
      if (relu) throw Error("pointwise conv: a fused ReLU needs a channels-last input");
      f32 ? apply_planes<float>(x, w, y) : apply_planes<double>(x, w, y);
    }
    ctx->save_for_backward({x, weight});
    ctx->saved_data["relu"] = relu;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& weight = saved[1];
    const at::MemoryFormat layout = kernels::layout_of(x);
    at::Tensor gy = grads[0].contiguous(layout);
    const int64_t outputs = weight.size(0);
    const at::Tensor w = weight.contiguous().view({outputs, -1});  // outputs x inputs
    // Either gradient may be unwanted: an architecture step asks for no weight gradient, and
    // nothing needs the input gradient of a network's first layer.
    const bool want_input = ctx->needs_input_grad(0), want_weight = ctx->needs_input_grad(1);
    const bool relu = ctx->saved_data["relu"].toBool();
    at::Tensor gx, gw;
    const bool f32 = x.scalar_type() == at::kFloat;
    if (kernels::is_nhwc(layout)) {
      if (want_input) {
        gx = at::empty_like(x);
        // Through the fused ReLU, the gradient passes where x > 0.
        const at::Tensor gate = relu ? x : at::Tensor();
        f32 ? apply_nhwc<float>(gy, w, gx, false, gate)
            : apply_nhwc<double>(gy, w, gx, false, gate);
      }
      if (want_weight)
        gw = f32 ? weight_grad_nhwc<float>(x, gy, outputs, relu)
                 : weight_grad_nhwc<double>(x, gy, outputs, relu);
    } else {
      if (want_input) {
        gx = at::empty_like(x);
        const at::Tensor wt = w.t().contiguous();  // inputs x outputs
        f32 ? apply_planes<float>(gy, wt, gx) : apply_planes<double>(gy, wt, gx);
      }
      if (want_weight)
        gw = f32 ? weight_grad<float>(x, gy, outputs) : weight_grad<double>(x, gy, outputs);
    }
    return {gx, want_weight ? gw.view(weight.sizes()) : gw, at::Tensor()};
  }
};

}  // namespace

at::Tensor native_pointwise_conv2d(const at::Tensor& x, const at::Tensor& weight, bool relu_input) {
  if (relu_input && !kernels::is_nhwc(kernels::layout_of(x)))
    return PointwiseConvFunction::apply(at::relu(x), weight, false);
  return PointwiseConvFunction::apply(x, weight, relu_input);
}

}  // namespace datanas
