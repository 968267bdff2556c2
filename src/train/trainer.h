// Retraining a discrete architecture from scratch: SGD with momentum, cosine schedule to 0,
// gradient clipping, auxiliary loss, drop-path ramped linearly, test accuracy every epoch.
// Writes into options.out: config.json, log.jsonl, checkpoint.pt (atomically, every epoch)
// and model.pt (the final model, for `datanas eval`).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "nets/network.h"
#include "train/train_options.h"

namespace datanas {

struct Evaluation {
  double loss = 0, top1 = 0, top5 = 0;
  int64_t seen = 0;
};

// Eval-mode pass over every batch of `loader`.
Evaluation evaluate_network(Network& network, const ImageLoader& loader, const at::Device& device);

struct TrainResult {
  nlohmann::json last_epoch;
  std::string model_path;
  int64_t params = 0;
};

TrainResult run_training(const TrainOptions& options, bool resume);

}  // namespace datanas
