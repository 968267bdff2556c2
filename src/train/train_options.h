// Every setting of retraining a discrete architecture from scratch. Defaults are CPU-sized
// (Fashion-MNIST); the paper's CIFAR-10 protocol is --init-channels 36 --layers 20 --epochs 600
// --batch-size 96 --auxiliary-weight 0.4 --cutout 16 --drop-path 0.2.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "tasks/lm_options.h"

namespace datanas {

struct TrainOptions {
  std::string task = "cnn";           // cnn | lm (word-level language modelling)
  std::string genotype = "DARTS_V2";  // JSON file or built-in name
  std::string arch = "darts";         // task lm: darts (the genotype's cell) | lstm (baseline)
  LmOptions lm;                       // task lm: BPTT, sizes, dropouts (--data: corpus folder)
  std::string network = "cifar";      // cifar | imagenet
  std::string dataset = "fashion-mnist";
  std::string data_dir;
  int64_t limit = 0;       // training images used (0 = all)
  int64_t test_limit = 0;  // test images used (0 = all)
  int64_t init_channels = 16;
  int layers = 8;
  double auxiliary_weight = 0.4;  // 0 = no auxiliary head
  double drop_path = 0.2;         // ramped linearly from 0 over the epochs
  int64_t cutout = 0;
  int epochs = 10;
  int64_t batch_size = 96;
  double lr = 0.025, momentum = 0.9, weight_decay = 3e-4, grad_clip = 5.0;
  uint64_t seed = 1;
  int threads = 0;
  std::string device = "cpu";
  std::string memory_format = "auto";  // auto | channels-last | nchw (channels_last_for)
  std::string kernels = "native";      // native | torch (parse_kernel_backend)
  std::string out = "runs/train";
  std::string on_nonfinite = "stop";  // stop | skip: what a NaN/Inf loss or gradient does
  double memory_limit_gib = 0;        // memory the run may use (0 = MemAvailable)
};

nlohmann::json train_options_to_json(const TrainOptions& options);
TrainOptions train_options_from_json(const nlohmann::json& config, const std::string& source);
void validate_train_options(const TrainOptions& options);  // throws Error naming the flag

}  // namespace datanas
