// Sizes and dropouts of the word-level language model (nets/rnn_model.h); no LibTorch here, so
// options structs and the CLI can hold it cheaply.
#pragma once
#include <cstdint>

namespace datanas {

struct RnnModelOptions {
  int64_t vocab = 0;
  int64_t emsize = 64, nhid = 64;
  double dropout = 0.2;   // on the cell output
  double dropouth = 0.1;  // on the states entering a product (DARTS cell)
  double dropoutx = 0.2;  // on x_t inside the cell (DARTS cell)
  double dropouti = 0.1;  // on the embedded input
  double dropoute = 0.0;  // whole-word embedding dropout
  int lstm_layers = 1;
};

}  // namespace datanas
