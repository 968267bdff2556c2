#include "kernels/weighted_sum.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "kernels/flat_kernels.h"
#include "kernels/layout.h"
#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <typename T>
std::vector<const T*> pointers(at::TensorList values) {
  std::vector<const T*> out;
  for (const at::Tensor& v : values) out.push_back(v.data_ptr<T>());
  return out;
}

template <typename T>
std::vector<T> gathered(const at::Tensor& w, const std::vector<int64_t>& index) {
  const at::Tensor c = w.contiguous();
  std::vector<T> out;
  for (int64_t i : index) out.push_back(c.data_ptr<T>()[i]);
  return out;
}

std::vector<int64_t> pick(const std::vector<int64_t>& index, const std::vector<int64_t>& at) {
  std::vector<int64_t> out;
  for (int64_t j : at) out.push_back(index[j]);
  return out;
}

template <typename T>
void sum_typed(at::TensorList values, const std::vector<T>& w, at::Tensor& y) {
  const auto& k = kernels::best_flat_kernels<T>();
  const std::vector<const T*> v = pointers<T>(values);
  T* yp = y.data_ptr<T>();
  const int count = static_cast<int>(v.size());
  kernels::for_each_pixel_chunk(y.numel(), kernels::kFlatChunk, [&](int64_t, int64_t b, int64_t e) {
    k.weighted_sum(v.data(), w.data(), count, yp, b, e);
  });
}

// The sum with mapped values (channels-last): value j's term is w[j] (value * scale + offset)
// with its map's scales and offsets, 1 and 0 where it has no map.
template <typename T>
void mapped_sum_typed(at::TensorList values, const std::vector<at::Tensor>& maps,
                      const std::vector<T>& w, at::Tensor& y) {
  const auto& k = kernels::best_flat_kernels<T>();
  const std::vector<const T*> v = pointers<T>(values);
  const int64_t C = y.size(1), count = static_cast<int64_t>(v.size());
  std::vector<T> scales(count * C, T(1)), offsets(count * C, T(0));
  for (int64_t j = 0; j < count; ++j) {
    if (!maps[j].defined()) continue;
    const at::Tensor m = maps[j].contiguous();
    std::copy(m.data_ptr<T>(), m.data_ptr<T>() + C, scales.begin() + j * C);
    std::copy(m.data_ptr<T>() + C, m.data_ptr<T>() + 2 * C, offsets.begin() + j * C);
  }
  T* yp = y.data_ptr<T>();
  // Chunks of whole pixels.
  const int64_t chunk = std::max<int64_t>(1, kernels::kFlatChunk / C) * C;
  kernels::for_each_pixel_chunk(y.numel(), chunk, [&](int64_t, int64_t b, int64_t e) {
    k.channel_weighted_sum(v.data(), w.data(), scales.data(), offsets.data(),
                           static_cast<int>(count), C, yp, b, e);
  });
}

// Per-chunk partial dot products <values[j], g>, summed in chunk order (independent of the
// thread count); with `out`, out[j] = w[j] g in the same pass, while each chunk of g is in cache.
template <typename T>
std::vector<double> scale_and_dot(at::TensorList values, const at::Tensor& g,
                                  const std::vector<T>& w, std::vector<at::Tensor>* out) {
  const auto& k = kernels::best_flat_kernels<T>();
  const std::vector<const T*> v = pointers<T>(values);
  const int64_t n = g.numel(), count = static_cast<int64_t>(v.size());
  const int64_t tasks = (n + kernels::kFlatChunk - 1) / kernels::kFlatChunk;
  std::vector<double> parts(values.empty() ? 0 : tasks * count, 0.0);
  std::vector<T*> outs;
  if (out)
    for (const at::Tensor& o : *out) outs.push_back(o.data_ptr<T>());
  const T* gp = g.data_ptr<T>();
  kernels::for_each_pixel_chunk(n, kernels::kFlatChunk, [&](int64_t t, int64_t b, int64_t e) {
    if (out) k.scaled_copies(gp, w.data(), static_cast<int>(outs.size()), outs.data(), b, e);
    if (!values.empty()) k.dots(v.data(), static_cast<int>(count), gp, &parts[t * count], b, e);
  });
  std::vector<double> sums(count, 0.0);
  for (int64_t t = 0; t < tasks && count > 0; ++t)
    for (int64_t j = 0; j < count; ++j) sums[j] += parts[t * count + j];
  return sums;
}

template <typename T>
std::vector<double> dots_typed(at::TensorList values, const at::Tensor& g) {
  return scale_and_dot<T>(values, g, {}, nullptr);
}

bool has_maps(const std::vector<at::Tensor>& maps) {
  return std::any_of(maps.begin(), maps.end(), [](const at::Tensor& m) { return m.defined(); });
}

struct WeightedSumFunction : public torch::autograd::Function<WeightedSumFunction> {
  // maps: empty, or one per value (undefined where the value has none); not differentiable.
  static at::Tensor forward(AutogradContext* ctx, at::TensorList values, const at::Tensor& w,
                            const std::vector<int64_t>& index,
                            const std::vector<at::Tensor>& maps) {
    at::Tensor y =
        at::empty_like(values[0], values[0].options(), values[0].suggest_memory_format());
    const bool mapped = has_maps(maps);
    if (y.scalar_type() == at::kFloat) {
      mapped ? mapped_sum_typed<float>(values, maps, gathered<float>(w, index), y)
             : sum_typed<float>(values, gathered<float>(w, index), y);
    } else {
      mapped ? mapped_sum_typed<double>(values, maps, gathered<double>(w, index), y)
             : sum_typed<double>(values, gathered<double>(w, index), y);
    }
    variable_list saved(values.begin(), values.end());
    saved.push_back(w);
    ctx->save_for_backward(saved);
    ctx->saved_data["index"] = index;
    std::vector<int64_t> plain;  // the values without a map
    for (size_t j = 0; j < values.size(); ++j)
      if (!mapped || !maps[j].defined()) plain.push_back(static_cast<int64_t>(j));
    ctx->saved_data["plain"] = plain;
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    const at::Tensor w = saved.back();
    saved.pop_back();
    const std::vector<int64_t> index = ctx->saved_data["index"].toIntVector();
    const std::vector<int64_t> plain = ctx->saved_data["plain"].toIntVector();
    const size_t count = saved.size();
    const at::Tensor g = grads[0].contiguous(saved[0].suggest_memory_format());
    variable_list out(count + 3);
    // A mapped value's gradient is g itself: its op applies the weight (fused_batch_norm.h).
    std::vector<bool> is_plain(count, false);
    for (int64_t j : plain) is_plain[j] = true;
    for (size_t j = 0; j < count; ++j)
      if (!is_plain[j] && ctx->needs_input_grad(j)) out[j] = g;
    // The plain values' gradients w[index[j]] g and the dots <values[j], g> in one pass.
    std::vector<at::Tensor> value_grads;
    std::vector<int64_t> scaled;  // the plain j whose gradient is wanted
    for (int64_t j : plain) {
      if (!ctx->needs_input_grad(j)) continue;
      scaled.push_back(j);
      value_grads.push_back(at::empty_like(g));
    }
    const bool weight_grad = ctx->needs_input_grad(count);
    std::vector<at::Tensor> dotted;
    if (weight_grad)
      for (int64_t j : plain) dotted.push_back(saved[j]);
    const std::vector<double> d =
        g.scalar_type() == at::kFloat
            ? scale_and_dot<float>(dotted, g, gathered<float>(w, pick(index, scaled)), &value_grads)
            : scale_and_dot<double>(dotted, g, gathered<double>(w, pick(index, scaled)),
                                    &value_grads);
    for (size_t s = 0; s < scaled.size(); ++s) out[scaled[s]] = value_grads[s];
    if (weight_grad) {
      at::Tensor gw = at::zeros({w.numel()}, at::kDouble);
      for (size_t p = 0; p < plain.size(); ++p) gw.data_ptr<double>()[index[plain[p]]] += d[p];
      out[count] = gw.to(w.scalar_type()).view(w.sizes());
    }
    return out;
  }
};

}  // namespace

std::vector<double> native_dots(const std::vector<at::Tensor>& values, const at::Tensor& g) {
  if (!can_weight_natively(values) || g.sizes() != values[0].sizes() ||
      g.scalar_type() != values[0].scalar_type())
    throw Error("dots: expected same-shape CPU values and a gradient of their shape and dtype");
  const at::Tensor gc = g.contiguous(values[0].suggest_memory_format());
  return g.scalar_type() == at::kFloat ? dots_typed<float>(values, gc)
                                       : dots_typed<double>(values, gc);
}

bool can_weight_natively(const std::vector<at::Tensor>& values) {
  if (values.empty() || values.size() > static_cast<size_t>(kernels::kMaxWeightedTerms))
    return false;
  const at::Tensor& first = values[0];
  if (!first.is_cpu() || (first.scalar_type() != at::kFloat && first.scalar_type() != at::kDouble))
    return false;
  const at::MemoryFormat layout = first.suggest_memory_format();
  for (const at::Tensor& v : values) {
    if (v.sizes() != first.sizes() || v.scalar_type() != first.scalar_type() || !v.is_cpu() ||
        !v.is_contiguous(layout))
      return false;
  }
  return true;
}

at::Tensor native_weighted_sum(const std::vector<at::Tensor>& values, const at::Tensor& w,
                               const std::vector<int64_t>& index,
                               const std::vector<at::Tensor>& maps) {
  if (!can_weight_natively(values) || index.size() != values.size() || w.dim() != 1 ||
      w.scalar_type() != values[0].scalar_type())
    throw Error("weighted sum: expected same-shape CPU values and a 1-D weight per value");
  for (int64_t i : index)
    if (i < 0 || i >= w.numel()) throw Error("weighted sum: weight index out of range");
  if (!maps.empty()) {
    const at::Tensor& first = values[0];
    if (maps.size() != values.size() ||
        (has_maps(maps) &&
         (first.dim() != 4 || !first.is_contiguous(at::MemoryFormat::ChannelsLast))))
      throw Error("weighted sum: expected one map per value and channels-last values");
    for (const at::Tensor& m : maps)
      if (m.defined() && (m.numel() != 2 * first.size(1) || m.scalar_type() != first.scalar_type()))
        throw Error("weighted sum: expected (2, C) maps of the values' dtype");
  }
  return WeightedSumFunction::apply(at::TensorList(values), w, index, maps);
}

}  // namespace datanas
