// Training a word-level language model from scratch: the discrete DARTS recurrent cell of a
// darts-rnn genotype, or an LSTM baseline (--arch lstm). SGD (DARTS: lr 20, no momentum) with
// the cosine schedule, gradient clipping, hidden state carried across BPTT windows (detached),
// optional variable-length BPTT. Every epoch logs train/validation/test perplexity to
// log.jsonl and writes checkpoint.pt atomically; --resume continues from it. The final model
// is model.pt (weights only) beside them.
#pragma once
#include <nlohmann/json.hpp>

#include "train/train_options.h"

namespace datanas {

struct LmTrainResult {
  nlohmann::json last_epoch;
  std::string model_path;
  int64_t params = 0;
};

LmTrainResult run_lm_training(const TrainOptions& options, bool resume);

}  // namespace datanas
