#include "kernels/factorized_reduce.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/channel_parts.h"
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

// x given as its channel parts (kernels/channel_parts.h): a sample of several is gathered into
// scratch, in cache, for the kernel, which sums over all of x's channels.
template <typename T>
void forward_typed(const std::vector<at::Tensor>& parts, const at::Tensor& w_even,
                   const at::Tensor& w_odd, at::Tensor& y) {
  const auto& k = kernels::nhwc_table<T>();
  const kernels::ConvGeometry g = reduce_geometry(parts[0]);
  const int64_t inputs = kernels::channels_of(parts), even = w_even.size(0), outputs = y.size(1);
  const at::Tensor wt_even = kernels::transposed_weight<T>(w_even);
  const at::Tensor wt_odd = kernels::transposed_weight<T>(w_odd);
  const int64_t pixels = g.height * g.width, out = g.out_height * g.out_width * outputs;
  std::vector<int64_t> channels;
  for (const at::Tensor& part : parts) channels.push_back(part.size(1));
  const int64_t count = static_cast<int64_t>(parts.size());
  const int64_t scratch = count == 1 ? 0 : pixels * inputs;
  T* yp = y.data_ptr<T>();
  kernels::for_each_sample<T>(parts[0].size(0), scratch, [&](int64_t n, T* gathered) {
    std::vector<const T*> sample;
    for (int64_t i = 0; i < count; ++i)
      sample.push_back(parts[i].data_ptr<T>() + n * pixels * channels[i]);
    if (count > 1)
      k.gather_channels(sample.data(), channels.data(), count, 0, pixels, false, gathered);
    k.reduce_forward(count == 1 ? sample[0] : gathered, wt_even.data_ptr<T>(), wt_odd.data_ptr<T>(),
                     yp + n * out, inputs, outputs, even, g);
  });
}

// One part's gradients: x's gradient and the weights' depend on each input channel alone, so
// each part takes its own columns of the weights (we, wo) and gives its own gradient (gx, null:
// not wanted) and columns of the weights' gradients (gw_even, gw_odd; null: not wanted), made of
// per-sample partials summed after the parallel loop so the result does not depend on the thread
// count.
template <typename T>
void part_backward(const at::Tensor& x, const at::Tensor& we, const at::Tensor& wo,
                   const at::Tensor& gy, at::Tensor* gx, at::Tensor* gw_even, at::Tensor* gw_odd) {
  const auto& k = kernels::nhwc_table<T>();
  const kernels::ConvGeometry g = reduce_geometry(x);
  const int64_t N = x.size(0), inputs = x.size(1), even = we.size(0);
  const int64_t odd = wo.size(0), outputs = even + odd;
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
  if (gw_even) *gw_even = part_even.sum(0).view({even, inputs});
  if (gw_odd) *gw_odd = part_odd.sum(0).view({odd, inputs});
}

// Every part's gradient (wanted: want_x) and the weights' (each null: not wanted).
template <typename T>
void backward_typed(const std::vector<at::Tensor>& parts, const at::Tensor& w_even,
                    const at::Tensor& w_odd, const at::Tensor& gy, bool want_x,
                    std::vector<at::Tensor>& gx, at::Tensor* gw_even, at::Tensor* gw_odd) {
  const std::vector<at::Tensor> we = kernels::part_columns(as_matrix(w_even), parts);
  const std::vector<at::Tensor> wo = kernels::part_columns(as_matrix(w_odd), parts);
  std::vector<at::Tensor> even_columns, odd_columns;
  for (size_t i = 0; i < parts.size(); ++i) {
    gx.push_back(want_x ? at::empty_like(parts[i]) : at::Tensor());
    at::Tensor even_part, odd_part;
    part_backward<T>(parts[i], we[i], wo[i], gy, want_x ? &gx.back() : nullptr,
                     gw_even ? &even_part : nullptr, gw_odd ? &odd_part : nullptr);
    even_columns.push_back(even_part);
    odd_columns.push_back(odd_part);
  }
  if (gw_even) *gw_even = kernels::joined_channels(even_columns).view(w_even.sizes());
  if (gw_odd) *gw_odd = kernels::joined_channels(odd_columns).view(w_odd.sizes());
}

void check_weight(const at::Tensor& w, const at::Tensor& x, int64_t inputs, const char* name) {
  if (w.dim() != 4 || w.size(1) != inputs || w.size(2) != 1 || w.size(3) != 1 ||
      w.scalar_type() != x.scalar_type())
    throw Error(std::string("factorized reduce: expected a (outputs, ") + std::to_string(inputs) +
                ", 1, 1) " + name + " weight of the input's dtype");
}

// The input as its channel parts (kernels/channel_parts.h), laid out for the kernels.
std::vector<at::Tensor> checked_parts(at::TensorList parts) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& part : parts) {
    if (!can_reduce_natively(part))
      throw Error("factorized reduce: expected a 4-D channels-last float/double CPU input");
    out.push_back(part.contiguous(at::MemoryFormat::ChannelsLast));
  }
  kernels::check_channel_parts(parts, "factorized reduce");
  return out;
}

struct FactorizedReduceFunction : public torch::autograd::Function<FactorizedReduceFunction> {
  static at::Tensor forward(AutogradContext* ctx, at::TensorList input, const at::Tensor& w_even,
                            const at::Tensor& w_odd) {
    const std::vector<at::Tensor> parts = checked_parts(input);
    const at::Tensor& x = parts[0];
    check_weight(w_even, x, kernels::channels_of(parts), "even-grid");
    check_weight(w_odd, x, kernels::channels_of(parts), "shifted-grid");
    const kernels::ConvGeometry g = reduce_geometry(x);
    at::Tensor y = at::empty({x.size(0), w_even.size(0) + w_odd.size(0), g.out_height, g.out_width},
                             x.options().memory_format(at::MemoryFormat::ChannelsLast));
    if (x.scalar_type() == at::kFloat) {
      forward_typed<float>(parts, w_even, w_odd, y);
    } else {
      forward_typed<double>(parts, w_even, w_odd, y);
    }
    std::vector<at::Tensor> saved = parts;
    saved.insert(saved.end(), {w_even, w_odd});
    ctx->save_for_backward(saved);
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    std::vector<at::Tensor> parts = ctx->get_saved_variables();
    const at::Tensor w_odd = parts.back();
    parts.pop_back();
    const at::Tensor w_even = parts.back();
    parts.pop_back();
    const at::Tensor gy = grads[0].contiguous(at::MemoryFormat::ChannelsLast);
    bool want_x = false;
    for (size_t i = 0; i < parts.size(); ++i) want_x |= ctx->needs_input_grad(i);
    std::vector<at::Tensor> gx;
    at::Tensor gw_even, gw_odd;
    at::Tensor* even_out = ctx->needs_input_grad(parts.size()) ? &gw_even : nullptr;
    at::Tensor* odd_out = ctx->needs_input_grad(parts.size() + 1) ? &gw_odd : nullptr;
    if (parts[0].scalar_type() == at::kFloat) {
      backward_typed<float>(parts, w_even, w_odd, gy, want_x, gx, even_out, odd_out);
    } else {
      backward_typed<double>(parts, w_even, w_odd, gy, want_x, gx, even_out, odd_out);
    }
    gx.insert(gx.end(), {gw_even, gw_odd});
    return gx;
  }
};

}  // namespace

bool can_reduce_natively(const at::Tensor& x) { return kernels::nhwc_float_cpu(x); }

at::Tensor native_factorized_reduce(const at::Tensor& x, const at::Tensor& w_even,
                                    const at::Tensor& w_odd) {
  return FactorizedReduceFunction::apply(at::TensorList(x), w_even, w_odd);
}

at::Tensor native_factorized_reduce(const std::vector<at::Tensor>& parts, const at::Tensor& w_even,
                                    const at::Tensor& w_odd) {
  return FactorizedReduceFunction::apply(at::TensorList(parts), w_even, w_odd);
}

}  // namespace datanas
