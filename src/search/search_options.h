// Every setting of a search, with the defaults of the embedded demo (a CPU-sized DATA search
// on Fashion-MNIST). Written to config.json in the run folder; a resumed run reads it back.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "nets/supernet.h"
#include "sample/sampler.h"
#include "tasks/lm_options.h"

namespace datanas {

struct SearchOptions {
  std::string task = "cnn";  // cnn (image classification) | lm (word-level language modelling)
  // Data (task lm: --data is a PTB-layout corpus folder, --limit counts training tokens)
  std::string dataset = "fashion-mnist";
  std::string data_dir;        // empty: the data set's default folder
  int64_t limit = 3000;        // images of the training set used (0 = all)
  double train_portion = 0.5;  // the rest is the validation half
  // Network
  SupernetOptions net;
  LmOptions lm;  // task lm: BPTT, model sizes, dropouts
  // Sampler and constraint
  SamplerOptions sampler;
  double adc_lambda = 0.1;
  // Optimisation
  std::string mode = "first-order";  // first-order | single-level
  int epochs = 5;
  int warmup_epochs = 0;  // first epochs train weights only (alphas frozen)
  int64_t batch_size = 64;
  double lr = 0.025, lr_min = 0.001, momentum = 0.9, weight_decay = 3e-4, grad_clip = 5.0;
  double arch_lr = 3e-4, arch_beta1 = 0.5, arch_beta2 = 0.999, arch_weight_decay = 0.0;
  // Gap measurement
  int64_t gap_batches = 0;      // validation batches per measurement (0 = the whole half)
  int64_t bn_recalibration_batches = 8;
  // Execution
  std::string exec = "fast";  // fast | dense
  uint64_t seed = 1;
  int threads = 0;  // 0 = all cores
  std::string device = "cpu";
  std::string out = "runs/search";
  // Reliability
  std::string on_nonfinite = "stop";  // stop | skip: what a NaN/Inf loss or gradient does
  double memory_limit_gib = 0;        // memory the run may use (0 = MemAvailable)
};

// Fills what the data set decides (task cnn: input channels and classes).
void prepare_search_options(SearchOptions& options);
nlohmann::json search_options_to_json(const SearchOptions& options);
SearchOptions search_options_from_json(const nlohmann::json& config, const std::string& source);
// Throws Error naming the flag when a value is out of range.
void validate_search_options(const SearchOptions& options);

}  // namespace datanas
