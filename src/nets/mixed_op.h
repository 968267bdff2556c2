// One supernet edge: every candidate op (MixedOp), and what the edge adds to its node
// (EdgeTerms), combined over a node's edges in one weighted sum (combine_edges).
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include <functional>
#include <vector>

#include "kernels/fused_batch_norm.h"
#include "kernels/kernel_backend.h"
#include "nets/deferred_terms.h"
#include "space/cell_weights.h"

namespace datanas {

// The reads of one cell state: each op that reads it with autograd takes its own alias
// (kernels/fan_out.h), so the state's gradient is summed once instead of once per extra reader.
class StateReaders {
 public:
  // `autograd_reads` aliases where fanning out pays (native kernels, two reads or more).
  StateReaders(at::Tensor state, int64_t autograd_reads, KernelBackend kernels);
  // For reads without autograd.
  const at::Tensor& state() const { return state_; }
  // For a read with autograd: the next alias (the state itself once they run out).
  at::Tensor take();

 private:
  at::Tensor state_;
  std::vector<at::Tensor> aliases_;
  size_t next_ = 0;
};

// What an edge adds to its node: sum_j row[index[j]] * values[j], and in an architecture step
// the deferred terms of its unselected ops (nets/deferred_terms.h). Where maps[j] is defined,
// values[j] is an op's output before its batch norm and its term is values[j] mapped by maps[j]
// (kernels/fused_batch_norm.h's WeightedOutput): such terms are only summed natively.
struct EdgeTerms {
  std::vector<at::Tensor> values, maps;
  std::vector<int64_t> index;
  at::Tensor row;
  c10::intrusive_ptr<DeferredTerms> deferred;  // null without
  std::function<at::Tensor()> zero;            // the edge's zero output
};

class MixedOpImpl : public torch::nn::Module {
 public:
  MixedOpImpl(int64_t channels, int64_t stride, KernelBackend kernels = KernelBackend::kTorch);
  // `row` is the (ops) weight row of this edge. kDense runs every op; otherwise the selected ops
  // run with autograd, and in kArchitecture the unselected ones whose weight is exactly 0 are
  // deferred terms (measured in the backward pass, never stored), the others run without
  // autograd.
  EdgeTerms terms(StateReaders& x, const at::Tensor& row, const uint8_t* selected, ExecMode mode);
  // This edge alone: combine_edges of its terms (undefined where nothing contributes).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& row, const uint8_t* selected,
                     ExecMode mode);
  // How many of its ops terms() runs with autograd for this selection and mode.
  int64_t autograd_reads(const uint8_t* selected, ExecMode mode) const;
  // The zero output this edge gives for input `x`.
  at::Tensor zero_output(const at::Tensor& x);

 private:
  // Op k's term with autograd: weighed by row[k] where its batch norm can leave the
  // normalising pass to the node's sum, else its plain output.
  kernels::WeightedOutput weighted_term(size_t k, const at::Tensor& x, const at::Tensor& row);

  KernelBackend kernels_;
  std::vector<torch::nn::AnyModule> ops_;
};
TORCH_MODULE(MixedOp);

// The sum of what the edges add, with every edge's deferred terms attached; `w` is their rows
// end to end (edge i's at [i * ops, (i + 1) * ops)). With native kernels the whole sum is one
// weighted sum (kernels/weighted_sum.h) where it has at most kMaxWeightedTerms terms, else one
// per edge, added. Undefined where no edge contributes anything.
at::Tensor combine_edges(const std::vector<EdgeTerms>& edges, const at::Tensor& w,
                         KernelBackend kernels);

}  // namespace datanas
