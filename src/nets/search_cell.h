// The supernet cell: every edge holds all candidate ops (MixedOp); what runs is decided per
// forward by CellWeights and ExecMode.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/modulelist.h>

#include <vector>

#include "kernels/kernel_backend.h"
#include "space/cell_space.h"
#include "space/cell_weights.h"

namespace datanas {

class MixedOpImpl : public torch::nn::Module {
 public:
  MixedOpImpl(int64_t channels, int64_t stride, KernelBackend kernels = KernelBackend::kTorch);
  // `row` is the (ops) weight row of this edge. Outside kDense, an edge none of whose ops
  // contributes returns an undefined tensor (its output is zero): callers skip it. With native
  // kernels the weighted sum of the op outputs is one kernel (kernels/weighted_sum.h). In
  // kArchitecture, unselected ops whose weight is exactly 0 are deferred terms
  // (nets/deferred_terms.h): measured in the backward pass, never stored.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& row, const uint8_t* selected,
                     ExecMode mode);
  // The zero output this edge gives for input `x`.
  at::Tensor zero_output(const at::Tensor& x);

 private:
  // sum_j row[index[j]] * values[j]; undefined without values.
  at::Tensor weighted_sum(const std::vector<at::Tensor>& values, const at::Tensor& row,
                          const std::vector<int64_t>& index);

  KernelBackend kernels_;
  std::vector<torch::nn::AnyModule> ops_;
};
TORCH_MODULE(MixedOp);

struct SearchCellOptions {
  CellSpace space;
  int64_t channels_prev_prev = 0, channels_prev = 0, channels = 0;
  int multiplier = 4;  // how many of the last nodes are concatenated into the output
  bool reduction = false, reduction_prev = false;
  KernelBackend kernels = KernelBackend::kTorch;
};

class SearchCellImpl : public torch::nn::Module {
 public:
  explicit SearchCellImpl(const SearchCellOptions& options);
  at::Tensor forward(const at::Tensor& s0, const at::Tensor& s1, const CellWeights& weights,
                     ExecMode mode);
  bool reduction() const { return options_.reduction; }

 private:
  SearchCellOptions options_;
  torch::nn::AnyModule preprocess0_, preprocess1_;
  std::vector<MixedOp> edges_;
};
TORCH_MODULE(SearchCell);

}  // namespace datanas
