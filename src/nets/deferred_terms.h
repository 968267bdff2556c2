// An architecture step weighs every op an edge does not select by exactly 0: those ops add
// nothing to the edge's output, and alpha's gradient needs only the inner product of each with
// the gradient of that output. Deferred terms are such ops left out of the forward pass and
// measured in the backward pass, once that gradient is known: no op output is kept from forward
// to backward, and fused blocks (kernels/dw_pw_block.h) never store theirs at all.
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <functional>
#include <vector>

namespace datanas {

struct DeferredTerms : torch::CustomClassHolder {
  std::vector<int64_t> index;  // each term's entry in the weight row
  // <g, term j>, for the gradient g of the output the terms belong to.
  std::function<double(size_t j, const at::Tensor& g)> measure;
};

// Returns y's values unchanged; in the backward pass the weight row w gains <g, term j> at
// terms->index[j] for the gradient g of y (the terms' weights are 0 in y, so y's own gradient
// passes through as it is).
at::Tensor attach_deferred_terms(const at::Tensor& y, const at::Tensor& w,
                                 c10::intrusive_ptr<DeferredTerms> terms);

}  // namespace datanas
