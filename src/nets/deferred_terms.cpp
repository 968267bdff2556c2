#include "nets/deferred_terms.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Every term's <g, term>, one term per thread at a time (each measure runs its own kernels on
// that one thread: the calls between a measure's parallel passes, LibTorch's and its own
// set-up, otherwise leave the other core idle). Terms are taken last first: the registry lists
// the convolutions, the dearest, after the pools. Each measure sums its samples in a fixed
// order, so the values do not depend on the thread that made them.
std::vector<double> measure_all(const DeferredTerms& terms, const at::Tensor& g) {
  const int64_t count = static_cast<int64_t>(terms.index.size());
  std::vector<double> measured(terms.index.size());
  std::atomic<int64_t> taken{0};
  at::parallel_for(0, std::min<int64_t>(count, at::get_num_threads()), 1, [&](int64_t, int64_t) {
    at::NoGradGuard no_grad;  // grad mode is per thread
    for (int64_t t; (t = taken++) < count;) {
      const size_t j = static_cast<size_t>(count - 1 - t);
      measured[j] = terms.measure(j, g);
    }
  });
  return measured;
}

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
      const std::vector<double> measured = measure_all(*terms, gy);
      for (size_t j = 0; j < measured.size(); ++j)
        dots.data_ptr<double>()[terms->index[j]] += measured[j];
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
