#include "kernels/factorized_reduce.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/layout.h"
#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

kernels::ConvGeometry reduce_geometry(const at::Tensor& x) {
  kernels::ConvGeometry g;
  g.height = x.size(2), g.width = x.size(3);
  g.out_height = (g.height + 1) / 2, g.out_width = (g.width + 1) / 2;
  g.kernel = 1, g.stride = 2, g.padding = 0;
  return g;
}

// (outputs, inputs) rows of a (outputs, inputs, 1, 1) weight.
at::Tensor as_matrix(const at::Tensor& w) { return w.contiguous().view({w.size(0), -1}); }

template <typename T>
void forward_typed(const at::Tensor& x, const at::Tensor& w_even, const at::Tensor& w_odd,
                   at::Tensor& y) {
  const auto& k = kernels::nhwc_table<T>();
  const kernels::ConvGeometry g = reduce_geometry(x);
  const int64_t inputs = x.size(1), even = w_even.size(0), outputs = y.size(1);
  const at::Tensor wt_even = kernels::transposed_weight<T>(w_even);
  const at::Tensor wt_odd = kernels::transposed_weight<T>(w_odd);
  const int64_t in = g.height * g.width * inputs, out = g.out_height * g.out_width * outputs;
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  kernels::for_each_sample(x.size(0), [&](int64_t n) {
    k.reduce_forward(xp + n * in, wt_even.data_ptr<T>(), wt_odd.data_ptr<T>(), yp + n * out, inputs,
                     outputs, even, g);
  });
}

// gx (null: not wanted) and per-sample partial weight gradients, summed after the parallel loop
// so the result does not depend on the thread count.
template <typename T>
void backward_typed(const at::Tensor& x, const at::Tensor& w_even, const at::Tensor& w_odd,
                    const at::Tensor& gy, at::Tensor* gx, at::Tensor* gw_even, at::Tensor* gw_odd) {
  const auto& k = kernels::nhwc_table<T>();
  const kernels::ConvGeometry g = reduce_geometry(x);
  const int64_t N = x.size(0), inputs = x.size(1), even = w_even.size(0);
  const int64_t odd = w_odd.size(0), outputs = even + odd;
  const at::Tensor we = as_matrix(w_even), wo = as_matrix(w_odd);
  at::Tensor part_even, part_odd;
  if (gw_even) part_even = at::zeros({N, even * inputs}, x.options());
  if (gw_odd) part_odd = at::zeros({N, odd * inputs}, x.options());
  const int64_t in = g.height * g.width * inputs, out = g.out_height * g.out_width * outputs;
  const T* xp = x.data_ptr<T>();
  const T* gp = gy.data_ptr<T>();
  T* gxp = gx ? gx->data_ptr<T>() : nullptr;
  kernels::for_each_sample(N, [&](int64_t n) {
    k.reduce_backward(
        xp + n * in, we.data_ptr<T>(), wo.data_ptr<T>(), gp + n * out, gxp ? gxp + n * in : nullptr,
        gw_even ? part_even.data_ptr<T>() + n * even * inputs : nullptr,
        gw_odd ? part_odd.data_ptr<T>() + n * odd * inputs : nullptr, inputs, outputs, even, g);
  });
  if (gw_even) *gw_even = part_even.sum(0).view(w_even.sizes());
  if (gw_odd) *gw_odd = part_odd.sum(0).view(w_odd.sizes());
}

void check_weight(const at::Tensor& w, const at::Tensor& x, const char* name) {
  if (w.dim() != 4 || w.size(1) != x.size(1) || w.size(2) != 1 || w.size(3) != 1 ||
      w.scalar_type() != x.scalar_type())
    throw Error(std::string("factorized reduce: expected a (outputs, ") +
                std::to_string(x.size(1)) + ", 1, 1) " + name + " weight of the input's dtype");
}

struct FactorizedReduceFunction : public torch::autograd::Function<FactorizedReduceFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& w_even,
                            const at::Tensor& w_odd) {
    if (!can_reduce_natively(input))
      throw Error("factorized reduce: expected a 4-D channels-last float/double CPU input");
    check_weight(w_even, input, "even-grid");
    check_weight(w_odd, input, "shifted-grid");
    const at::Tensor x = input.contiguous(at::MemoryFormat::ChannelsLast);
    const kernels::ConvGeometry g = reduce_geometry(x);
    at::Tensor y = at::empty({x.size(0), w_even.size(0) + w_odd.size(0), g.out_height, g.out_width},
                             x.options().memory_format(at::MemoryFormat::ChannelsLast));
    if (x.scalar_type() == at::kFloat) {
      forward_typed<float>(x, w_even, w_odd, y);
    } else {
      forward_typed<double>(x, w_even, w_odd, y);
    }
    ctx->save_for_backward({x, w_even, w_odd});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w_even = saved[1], &w_odd = saved[2];
    const at::Tensor gy = grads[0].contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor gx, gw_even, gw_odd;
    if (ctx->needs_input_grad(0)) gx = at::empty_like(x);
    at::Tensor* gx_out = gx.defined() ? &gx : nullptr;
    at::Tensor* even_out = ctx->needs_input_grad(1) ? &gw_even : nullptr;
    at::Tensor* odd_out = ctx->needs_input_grad(2) ? &gw_odd : nullptr;
    if (x.scalar_type() == at::kFloat) {
      backward_typed<float>(x, w_even, w_odd, gy, gx_out, even_out, odd_out);
    } else {
      backward_typed<double>(x, w_even, w_odd, gy, gx_out, even_out, odd_out);
    }
    return {gx, gw_even, gw_odd};
  }
};

}  // namespace

bool can_reduce_natively(const at::Tensor& x) { return kernels::nhwc_float_cpu(x); }

at::Tensor native_factorized_reduce(const at::Tensor& x, const at::Tensor& w_even,
                                    const at::Tensor& w_odd) {
  return FactorizedReduceFunction::apply(x, w_even, w_odd);
}

}  // namespace datanas
