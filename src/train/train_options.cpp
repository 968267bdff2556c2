#include "train/train_options.h"

#include <nlohmann/json.hpp>

#include "kernels/kernel_backend.h"
#include "util/error.h"
#include "util/json_fields.h"

namespace datanas {
using nlohmann::json;

namespace {

template <typename Options, typename Fn>
void for_each_field(Options& o, Fn&& field) {
  field("task", o.task);
  field("genotype", o.genotype);
  field("arch", o.arch);
  field("network", o.network);
  field("dataset", o.dataset);
  field("data_dir", o.data_dir);
  field("limit", o.limit);
  field("test_limit", o.test_limit);
  field("init_channels", o.init_channels);
  field("layers", o.layers);
  field("auxiliary_weight", o.auxiliary_weight);
  field("drop_path", o.drop_path);
  field("cutout", o.cutout);
  field("epochs", o.epochs);
  field("batch_size", o.batch_size);
  field("lr", o.lr);
  field("momentum", o.momentum);
  field("weight_decay", o.weight_decay);
  field("grad_clip", o.grad_clip);
  field("seed", o.seed);
  field("threads", o.threads);
  field("device", o.device);
  field("memory_format", o.memory_format);
  field("kernels", o.kernels);
  field("out", o.out);
  field("on_nonfinite", o.on_nonfinite);
  field("memory_limit_gib", o.memory_limit_gib);
  for_each_lm_field(o.lm, field);
}

}  // namespace

json train_options_to_json(const TrainOptions& o) {
  json out = json::object();
  for_each_field(o, JsonFieldWriter{out});
  return out;
}

TrainOptions train_options_from_json(const json& config, const std::string& source) {
  if (!config.is_object()) throw Error(source + ": expected a JSON object");
  TrainOptions o;
  for_each_field(o, JsonFieldReader{config, source});
  return o;
}

void validate_train_options(const TrainOptions& o) {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw Error(message);
  };
  require(o.task == "cnn" || o.task == "lm", "--task: expected cnn or lm, got '" + o.task + "'");
  require(o.arch == "darts" || o.arch == "lstm",
          "--arch: expected darts or lstm, got '" + o.arch + "'");
  if (o.task == "lm") validate_lm_options(o.lm);
  require(o.network == "cifar" || o.network == "imagenet",
          "--network: expected cifar or imagenet, got '" + o.network + "'");
  require(o.limit >= 0 && o.test_limit >= 0, "--limit/--test-limit: expected >= 0");
  require(o.init_channels >= 2, "--init-channels: expected >= 2");
  require(o.layers >= 3, "--layers: expected >= 3");
  require(o.auxiliary_weight >= 0, "--auxiliary-weight: expected >= 0");
  require(o.drop_path >= 0 && o.drop_path < 1, "--drop-path: expected in [0, 1)");
  require(o.cutout >= 0, "--cutout: expected >= 0");
  require(o.epochs >= 1, "--epochs: expected >= 1");
  require(o.batch_size >= 1, "--batch-size: expected >= 1");
  require(o.lr > 0, "--lr: expected > 0");
  require(o.grad_clip > 0, "--grad-clip: expected > 0");
  require(o.threads >= 0, "--threads: expected >= 0");
  require(o.on_nonfinite == "stop" || o.on_nonfinite == "skip",
          "--on-nonfinite: expected stop or skip, got '" + o.on_nonfinite + "'");
  require(o.memory_limit_gib >= 0, "--memory-limit: expected >= 0 GiB (0 = MemAvailable)");
  parse_kernel_backend(o.kernels);  // each throws naming its flag
  channels_last_for(o.memory_format);
}

}  // namespace datanas
