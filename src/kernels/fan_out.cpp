#include "kernels/fan_out.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "kernels/flat_kernels.h"
#include "kernels/layout.h"
#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <typename T>
at::Tensor sum_typed(const std::vector<at::Tensor>& grads) {
  const auto& k = kernels::best_flat_kernels<T>();
  at::Tensor sum = at::empty_like(grads[0]);
  T* out = sum.data_ptr<T>();
  const std::vector<T> ones(kernels::kMaxWeightedTerms, T(1));
  kernels::for_each_pixel_chunk(
      sum.numel(), kernels::kFlatChunk, [&](int64_t, int64_t b, int64_t e) {
        // At most kMaxWeightedTerms terms per call; more are added on top of the partial sum.
        size_t j = 0;
        while (j < grads.size()) {
          std::vector<const T*> terms;
          if (j > 0) terms.push_back(out);
          for (; j < grads.size() && terms.size() < static_cast<size_t>(kernels::kMaxWeightedTerms);
               ++j)
            terms.push_back(grads[j].data_ptr<T>());
          k.weighted_sum(terms.data(), ones.data(), static_cast<int>(terms.size()), out, b, e);
        }
      });
  return sum;
}

struct FanOutFunction : public torch::autograd::Function<FanOutFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, int64_t copies) {
    ctx->saved_data["layout"] = static_cast<int64_t>(kernels::layout_of(x));
    variable_list aliases;
    for (int64_t c = 0; c < copies; ++c) aliases.push_back(x.alias());
    return aliases;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto layout = static_cast<at::MemoryFormat>(ctx->saved_data["layout"].toInt());
    std::vector<at::Tensor> present;
    for (const at::Tensor& g : grads)
      if (g.defined()) present.push_back(g.contiguous(layout));
    if (present.empty()) return {at::Tensor(), at::Tensor()};
    if (present.size() == 1) return {present[0], at::Tensor()};
    const at::Tensor sum = present[0].scalar_type() == at::kFloat ? sum_typed<float>(present)
                                                                  : sum_typed<double>(present);
    return {sum, at::Tensor()};
  }
};

}  // namespace

bool can_fan_out(const at::Tensor& x) {
  return x.defined() && x.requires_grad() && x.is_cpu() &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) &&
         x.is_contiguous(kernels::layout_of(x));
}

std::vector<at::Tensor> native_fan_out(const at::Tensor& x, int64_t copies) {
  if (!can_fan_out(x))
    throw Error("fan-out: expected a float/double CPU tensor needing a gradient");
  if (copies < 1) throw Error("fan-out: expected at least one copy");
  return FanOutFunction::apply(x, copies);
}

}  // namespace datanas
