// The DARTS recurrent cell, discrete (a darts-rnn genotype) and its shared pieces. One step:
//   [c0, h0] = [x_t, h_{t-1}] W0,  s0 = h_{t-1} + sigmoid(c0) * (tanh(h0) - h_{t-1})
//   node j: for each pair (op, input i): [c, h] = s_i W_j,  u = s_i + sigmoid(c) * (op(h) - s_i)
//   s_{j+1} = mean of the node's pairs' updates u (a single pair is the DARTS cell exactly; the
//   mean is what the supernet computes with normalised EGS weights b / sum b)
//   h_t = mean of the states listed in `concat` (DARTS: s_1..s_8).
// Variational dropout: one mask per sequence on x_t (dropoutx) and on the states that enter a
// product (dropouth), as in the DARTS code.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "space/genotype.h"

namespace datanas {

struct RnnCellOptions {
  int64_t input_size = 64, hidden_size = 64;
  double dropoutx = 0.0, dropouth = 0.0;
};

// The two variational dropout masks of one sequence (undefined tensors in eval mode).
struct RnnMasks {
  at::Tensor x, h;
};
RnnMasks make_rnn_masks(int64_t batch, const RnnCellOptions& options, bool training);

// s0 from x_t and h_{t-1} through W0 (input + hidden) x (2 hidden).
at::Tensor rnn_initial_state(const at::Tensor& x, const at::Tensor& h_prev, const at::Tensor& w0,
                             const RnnMasks& masks);

// Uniform(-0.04, 0.04), the DARTS initialisation of every recurrent weight.
at::Tensor rnn_weight(int64_t rows, int64_t cols);

class RnnCellImpl : public torch::nn::Module {
 public:
  RnnCellImpl(const Genotype& genotype, const RnnCellOptions& options);
  // inputs: (T, B, input_size), hidden: (B, hidden_size). Returns (T, B, hidden_size); the
  // last row is the next hidden state.
  at::Tensor forward(const at::Tensor& inputs, const at::Tensor& hidden);
  // One time step with given masks.
  at::Tensor step(const at::Tensor& x, const at::Tensor& h_prev, const RnnMasks& masks);

 private:
  Genotype genotype_;
  RnnCellOptions options_;
  std::vector<std::vector<int>> pair_ops_;  // per node, the op index of each pair
  at::Tensor w0_;
  std::vector<at::Tensor> ws_;
};
TORCH_MODULE(RnnCell);

}  // namespace datanas
