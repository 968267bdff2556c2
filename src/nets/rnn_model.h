// The word-level language model around a recurrent cell: embedding (with embedding dropout,
// whole words), locked (variational) dropout on the embedded input, the cell unrolled over the
// BPTT window, locked dropout on its output, and a decoder tied to the embedding. One class for
// the three cores: the discrete DARTS cell of a genotype, the search cell (driven by
// CellWeights) and an LSTM baseline (with a projection to emsize when nhid differs).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/rnn.h>
#include <torch/nn/pimpl.h>

#include <string>

#include "nets/rnn_cell.h"
#include "nets/rnn_model_options.h"
#include "nets/rnn_search_cell.h"

namespace datanas {

// The recurrent state carried across BPTT windows: h (B, nhid); LSTM also c, both
// (layers, B, nhid).
struct LmHidden {
  at::Tensor h, c;
  LmHidden detached() const;
};

class RnnModelImpl : public torch::nn::Module {
 public:
  // core: "darts" (with `genotype`), "search" (with `space`) or "lstm".
  RnnModelImpl(const std::string& core, const RnnModelOptions& options, const Genotype& genotype,
               const CellSpace& space);
  // tokens (T, B) int64 -> logits (T * B, vocab); `hidden` is replaced by the next state.
  // `weights`/`mode` are used by the search core only.
  at::Tensor forward(const at::Tensor& tokens, LmHidden& hidden,
                     const CellWeights* weights = nullptr, ExecMode mode = ExecMode::kSelected);
  LmHidden initial_hidden(int64_t batch, const at::Device& device) const;
  const RnnModelOptions& options() const { return options_; }
  const std::string& core() const { return core_; }

 private:
  std::string core_;
  RnnModelOptions options_;
  torch::nn::Embedding encoder_{nullptr};
  at::Tensor decoder_bias_;
  RnnCell cell_{nullptr};
  RnnSearchCell search_cell_{nullptr};
  torch::nn::LSTM lstm_{nullptr};
  torch::nn::Linear projection_{nullptr};
};
TORCH_MODULE(RnnModel);

// Trainable parameters (the tied embedding is one matrix).
int64_t count_lm_parameters(RnnModelImpl& model);

}  // namespace datanas
