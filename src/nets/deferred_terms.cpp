#include "nets/deferred_terms.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct DeferredTermsFunction : public torch::autograd::Function<DeferredTermsFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y, const at::Tensor& w,
                            c10::intrusive_ptr<DeferredTerms> terms) {
    ctx->saved_data["terms"] = c10::IValue::make_capsule(std::move(terms));
    ctx->saved_data["w"] = w.detach();  // for its size and options
    ctx->saved_data["layout"] = static_cast<int64_t>(y.suggest_memory_format());
    return y;  // returned as a view of y, which carries this node
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    at::Tensor gw, gy = grads[0];
    if (ctx->needs_input_grad(1)) {
      const auto terms =
          c10::static_intrusive_pointer_cast<DeferredTerms>(ctx->saved_data["terms"].toCapsule());
      const at::Tensor w = ctx->saved_data["w"].toTensor();
      at::Tensor dots = at::zeros(w.sizes(), at::kDouble);  // not a view: it may become a .grad
      // One copy into y's layout (the gradient of a concatenation's slice is strided), not one
      // per term; passed on, so the terms of a node's other edges, attached to the same sum,
      // find it laid out already.
      gy = gy.contiguous(static_cast<at::MemoryFormat>(ctx->saved_data["layout"].toInt()));
      at::NoGradGuard no_grad;
      for (size_t j = 0; j < terms->index.size(); ++j)
        dots.data_ptr<double>()[terms->index[j]] += terms->measure(j, gy);
      gw = dots.to(w.options());
    }
    return {gy, gw, at::Tensor()};
  }
};

}  // namespace

at::Tensor attach_deferred_terms(const at::Tensor& y, const at::Tensor& w,
                                 c10::intrusive_ptr<DeferredTerms> terms) {
  if (!terms || !terms->measure) throw Error("deferred terms: expected a measure function");
  for (int64_t i : terms->index)
    if (i < 0 || i >= w.numel()) throw Error("deferred terms: weight index out of range");
  return DeferredTermsFunction::apply(y, w, std::move(terms));
}

}  // namespace datanas
