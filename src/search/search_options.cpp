#include "search/search_options.h"

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace datanas {
using nlohmann::json;

json search_options_to_json(const SearchOptions& o) {
  return json{
      {"dataset", o.dataset},
      {"data_dir", o.data_dir},
      {"limit", o.limit},
      {"train_portion", o.train_portion},
      {"init_channels", o.net.init_channels},
      {"layers", o.net.layers},
      {"nodes", o.net.nodes},
      {"multiplier", o.net.multiplier},
      {"stem_multiplier", o.net.stem_multiplier},
      {"sampler", o.sampler.name},
      {"M", o.sampler.M},
      {"granularity", granularity_name(o.sampler.granularity)},
      {"parametrisation", parametrisation_name(o.sampler.parametrisation)},
      {"weights", o.sampler.plain_sum ? "plain-sum" : "normalised"},
      {"tau_max", o.sampler.tau_max},
      {"tau_min", o.sampler.tau_min},
      {"adc_lambda", o.adc_lambda},
      {"mode", o.mode},
      {"epochs", o.epochs},
      {"batch_size", o.batch_size},
      {"lr", o.lr},
      {"lr_min", o.lr_min},
      {"momentum", o.momentum},
      {"weight_decay", o.weight_decay},
      {"grad_clip", o.grad_clip},
      {"arch_lr", o.arch_lr},
      {"arch_beta1", o.arch_beta1},
      {"arch_beta2", o.arch_beta2},
      {"arch_weight_decay", o.arch_weight_decay},
      {"gap_batches", o.gap_batches},
      {"bn_recalibration_batches", o.bn_recalibration_batches},
      {"exec", o.exec},
      {"seed", o.seed},
      {"threads", o.threads},
      {"device", o.device},
      {"out", o.out},
  };
}

template <typename T>
static void read(const json& config, const char* key, T& value, const std::string& source) {
  if (!config.contains(key)) return;
  try {
    value = config.at(key).get<T>();
  } catch (const json::exception&) {
    throw Error(source + ": key '" + key + "' has the wrong type");
  }
}

SearchOptions search_options_from_json(const json& c, const std::string& source) {
  if (!c.is_object()) throw Error(source + ": expected a JSON object");
  SearchOptions o;
  read(c, "dataset", o.dataset, source);
  read(c, "data_dir", o.data_dir, source);
  read(c, "limit", o.limit, source);
  read(c, "train_portion", o.train_portion, source);
  read(c, "init_channels", o.net.init_channels, source);
  read(c, "layers", o.net.layers, source);
  read(c, "nodes", o.net.nodes, source);
  read(c, "multiplier", o.net.multiplier, source);
  read(c, "stem_multiplier", o.net.stem_multiplier, source);
  read(c, "sampler", o.sampler.name, source);
  read(c, "M", o.sampler.M, source);
  std::string granularity = granularity_name(o.sampler.granularity);
  read(c, "granularity", granularity, source);
  o.sampler.granularity = parse_granularity(granularity);
  std::string parametrisation = parametrisation_name(o.sampler.parametrisation);
  read(c, "parametrisation", parametrisation, source);
  o.sampler.parametrisation = parse_parametrisation(parametrisation);
  std::string weights = "normalised";
  read(c, "weights", weights, source);
  o.sampler.plain_sum = weights == "plain-sum";
  read(c, "tau_max", o.sampler.tau_max, source);
  read(c, "tau_min", o.sampler.tau_min, source);
  read(c, "adc_lambda", o.adc_lambda, source);
  read(c, "mode", o.mode, source);
  read(c, "epochs", o.epochs, source);
  read(c, "batch_size", o.batch_size, source);
  read(c, "lr", o.lr, source);
  read(c, "lr_min", o.lr_min, source);
  read(c, "momentum", o.momentum, source);
  read(c, "weight_decay", o.weight_decay, source);
  read(c, "grad_clip", o.grad_clip, source);
  read(c, "arch_lr", o.arch_lr, source);
  read(c, "arch_beta1", o.arch_beta1, source);
  read(c, "arch_beta2", o.arch_beta2, source);
  read(c, "arch_weight_decay", o.arch_weight_decay, source);
  read(c, "gap_batches", o.gap_batches, source);
  read(c, "bn_recalibration_batches", o.bn_recalibration_batches, source);
  read(c, "exec", o.exec, source);
  read(c, "seed", o.seed, source);
  read(c, "threads", o.threads, source);
  read(c, "device", o.device, source);
  read(c, "out", o.out, source);
  return o;
}

void validate_search_options(const SearchOptions& o) {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw Error(message);
  };
  require(o.limit >= 0, "--limit: expected >= 0");
  require(o.train_portion > 0 && o.train_portion < 1, "--train-portion: expected in (0, 1)");
  require(o.epochs >= 1, "--epochs: expected >= 1");
  require(o.batch_size >= 1, "--batch-size: expected >= 1");
  require(o.adc_lambda >= 0, "--adc-lambda: expected >= 0");
  require(o.mode == "first-order" || o.mode == "single-level",
          "--mode: expected first-order or single-level, got '" + o.mode + "'");
  require(o.exec == "fast" || o.exec == "dense",
          "--exec: expected fast or dense, got '" + o.exec + "'");
  require(o.lr > 0 && o.lr_min >= 0 && o.lr_min <= o.lr, "--lr/--lr-min: expected 0 <= lr_min <= lr");
  require(o.arch_lr > 0, "--arch-lr: expected > 0");
  require(o.grad_clip > 0, "--grad-clip: expected > 0");
  require(o.threads >= 0, "--threads: expected >= 0");
  require(o.gap_batches >= 0 && o.bn_recalibration_batches >= 0,
          "--gap-batches/--bn-recalibration-batches: expected >= 0");
}

}  // namespace datanas
