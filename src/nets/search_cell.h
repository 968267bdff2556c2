// The supernet cell: every edge holds all candidate ops (MixedOp); what runs is decided per
// forward by CellWeights and ExecMode.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/modulelist.h>

#include <vector>

#include "kernels/kernel_backend.h"
#include "nets/mixed_op.h"
#include "space/cell_space.h"
#include "space/cell_weights.h"
#include "space/op_blocks.h"

namespace datanas {

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
  // forward's output as its channel parts (kernels/channel_parts.h), the last `multiplier`
  // nodes, never concatenated, on inputs already preprocessed: p_i = preprocess(i, s_i).
  std::vector<at::Tensor> output_parts(const at::Tensor& p0, const at::Tensor& p1,
                                       const CellWeights& weights, ExecMode mode);
  at::Tensor preprocess(int input, const at::Tensor& s);
  // The same on s given as its channel parts (kernels/channel_parts.h): a FactorizedReduce reads
  // them in place, a ReLU -> 1x1 conv -> BN joined (relu_conv_bn_shared reads them in place).
  at::Tensor preprocess(int input, const std::vector<at::Tensor>& parts);
  // The preprocessing of input 0 or 1 where it is ReLU -> 1x1 conv -> BN (else null: input 0
  // after a reduction cell is a FactorizedReduce), which can share a pass over its state with
  // another cell's (relu_conv_bn_shared).
  ReLUConvBNImpl* pointwise_preprocess(int input);
  bool reduction() const { return options_.reduction; }

 private:
  SearchCellOptions options_;
  torch::nn::AnyModule preprocess0_, preprocess1_;
  std::vector<MixedOp> edges_;
};
TORCH_MODULE(SearchCell);

}  // namespace datanas
