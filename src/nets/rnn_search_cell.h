// The DARTS recurrent search cell: node j sums, over every (input i, op k) pair of its decision,
// w[i, k] * (s_i + sigmoid(c_i) * (op_k(h_i) - s_i)) with [c_i, h_i] = s_i W_j; `none` adds
// nothing. The output is the mean of all nodes. Unlike the DARTS search code, no parameter-free
// BatchNorm follows s0 and each node: DARTS shares one BN across nodes and time steps, and its
// eval-mode running statistics made the recurrence diverge here (validation perplexity inf
// after a few steps). Without it, the supernet with a genotype's fixed weights computes exactly
// the discrete cell (nets/rnn_cell.h), so the derived perplexity measures that cell.
// ExecMode as in the CNN supernet: kSelected computes only inputs with a selected op, and
// kArchitecture computes the inputs without one forward-only, so alpha still gets its
// straight-through gradient.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "nets/rnn_cell.h"
#include "space/cell_space.h"
#include "space/cell_weights.h"

namespace datanas {

class RnnSearchCellImpl : public torch::nn::Module {
 public:
  RnnSearchCellImpl(const CellSpace& space, const RnnCellOptions& options);
  // inputs (T, B, input_size), hidden (B, hidden_size) -> (T, B, hidden_size).
  at::Tensor forward(const at::Tensor& inputs, const at::Tensor& hidden, const CellWeights& w,
                     ExecMode mode);
  at::Tensor step(const at::Tensor& x, const at::Tensor& h_prev, const CellWeights& w,
                  ExecMode mode, const RnnMasks& masks);
  const CellSpace& space() const { return space_; }

 private:
  CellSpace space_;
  RnnCellOptions options_;
  at::Tensor w0_;
  std::vector<at::Tensor> ws_;
};
TORCH_MODULE(RnnSearchCell);

}  // namespace datanas
