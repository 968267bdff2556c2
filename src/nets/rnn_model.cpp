#include "nets/rnn_model.h"

#include <ATen/ATen.h>

#include "util/error.h"

namespace datanas {

LmHidden LmHidden::detached() const {
  return {h.defined() ? h.detach() : h, c.defined() ? c.detach() : c};
}

RnnModelImpl::RnnModelImpl(const std::string& core, const RnnModelOptions& o,
                           const Genotype& genotype, const CellSpace& space)
    : core_(core), options_(o) {
  if (o.vocab < 2) throw Error("language model: vocabulary has fewer than 2 words");
  if (core != "lstm" && o.emsize != o.nhid)
    throw Error("--emsize/--nhid: the tied DARTS cell needs equal sizes, got " +
                std::to_string(o.emsize) + " and " + std::to_string(o.nhid));
  encoder_ = register_module("encoder", torch::nn::Embedding(o.vocab, o.emsize));
  // Tied input and output embeddings: the decoder is the encoder's matrix plus its own bias.
  decoder_bias_ = register_parameter("decoder_bias", at::zeros({o.vocab}));
  {
    at::NoGradGuard no_grad;
    encoder_->weight.uniform_(-0.04, 0.04);
  }
  RnnCellOptions cell{o.emsize, o.nhid, o.dropoutx, o.dropouth};
  if (core == "darts") {
    cell_ = register_module("cell", RnnCell(genotype, cell));
  } else if (core == "search") {
    search_cell_ = register_module("cell", RnnSearchCell(space, cell));
  } else if (core == "lstm") {
    lstm_ = register_module(
        "lstm",
        torch::nn::LSTM(torch::nn::LSTMOptions(o.emsize, o.nhid).num_layers(o.lstm_layers)));
    if (o.nhid != o.emsize)
      projection_ = register_module("projection", torch::nn::Linear(o.nhid, o.emsize));
  } else {
    throw Error("--arch: expected darts or lstm, got '" + core + "'");
  }
}

LmHidden RnnModelImpl::initial_hidden(int64_t batch, const at::Device& device) const {
  LmHidden hidden;
  if (core_ == "lstm") {
    hidden.h = at::zeros({options_.lstm_layers, batch, options_.nhid}, at::device(device));
    hidden.c = at::zeros_like(hidden.h);
  } else {
    hidden.h = at::zeros({batch, options_.nhid}, at::device(device));
  }
  return hidden;
}

namespace {

// One mask per sequence and feature, shared by every time step: x (T, B, F).
at::Tensor locked_dropout(const at::Tensor& x, double p, bool training) {
  if (!training || p <= 0) return x;
  at::Tensor mask =
      at::empty({1, x.size(1), x.size(2)}, x.options()).bernoulli_(1.0 - p) / (1.0 - p);
  return x * mask;
}

}  // namespace

at::Tensor RnnModelImpl::forward(const at::Tensor& tokens, LmHidden& hidden,
                                 const CellWeights* weights, ExecMode mode) {
  at::Tensor table = encoder_->weight;
  if (is_training() && options_.dropoute > 0) {
    const double p = options_.dropoute;
    at::Tensor keep =
        at::empty({table.size(0), 1}, table.options()).bernoulli_(1.0 - p) / (1.0 - p);
    table = table * keep;
  }
  at::Tensor emb = locked_dropout(at::embedding(table, tokens), options_.dropouti, is_training());
  at::Tensor out;
  if (core_ == "darts") {
    out = cell_->forward(emb, hidden.h);
    hidden.h = out[out.size(0) - 1];
  } else if (core_ == "search") {
    if (!weights) throw Error("search language model: no architecture weights given");
    out = search_cell_->forward(emb, hidden.h, *weights, mode);
    hidden.h = out[out.size(0) - 1];
  } else {
    auto [output, state] = lstm_->forward(emb, std::make_tuple(hidden.h, hidden.c));
    hidden.h = std::get<0>(state);
    hidden.c = std::get<1>(state);
    out = projection_ ? projection_->forward(output) : output;
  }
  out = locked_dropout(out, options_.dropout, is_training());
  return at::linear(out.reshape({-1, options_.emsize}), encoder_->weight, decoder_bias_);
}

int64_t count_lm_parameters(RnnModelImpl& model) {
  int64_t total = 0;
  for (const at::Tensor& p : model.parameters()) total += p.numel();
  return total;
}

}  // namespace datanas
