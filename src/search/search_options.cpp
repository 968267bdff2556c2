#include "search/search_options.h"

#include <nlohmann/json.hpp>

#include "data/datasets.h"
#include "util/error.h"
#include "util/json_fields.h"

namespace datanas {
using nlohmann::json;

namespace {

// Every plain field of SearchOptions, once; the sampler's enums are handled beside it.
template <typename Options, typename Fn>
void for_each_field(Options& o, Fn&& field) {
  field("task", o.task);
  field("dataset", o.dataset);
  field("data_dir", o.data_dir);
  field("limit", o.limit);
  field("train_portion", o.train_portion);
  field("init_channels", o.net.init_channels);
  field("layers", o.net.layers);
  field("nodes", o.net.nodes);
  field("multiplier", o.net.multiplier);
  field("stem_multiplier", o.net.stem_multiplier);
  field("sampler", o.sampler.name);
  field("M", o.sampler.M);
  field("plain_sum", o.sampler.plain_sum);
  field("tau_max", o.sampler.tau_max);
  field("tau_min", o.sampler.tau_min);
  field("adc_lambda", o.adc_lambda);
  field("mode", o.mode);
  field("epochs", o.epochs);
  field("warmup_epochs", o.warmup_epochs);
  field("batch_size", o.batch_size);
  field("lr", o.lr);
  field("lr_min", o.lr_min);
  field("momentum", o.momentum);
  field("weight_decay", o.weight_decay);
  field("grad_clip", o.grad_clip);
  field("arch_lr", o.arch_lr);
  field("arch_beta1", o.arch_beta1);
  field("arch_beta2", o.arch_beta2);
  field("arch_weight_decay", o.arch_weight_decay);
  field("gap_batches", o.gap_batches);
  field("bn_recalibration_batches", o.bn_recalibration_batches);
  field("exec", o.exec);
  field("channels_last", o.net.channels_last);
  field("seed", o.seed);
  field("threads", o.threads);
  field("device", o.device);
  field("out", o.out);
  field("on_nonfinite", o.on_nonfinite);
  field("memory_limit_gib", o.memory_limit_gib);
  for_each_lm_field(o.lm, field);
}

}  // namespace

void prepare_search_options(SearchOptions& options) {
  if (options.task != "cnn") return;
  const DatasetInfo& info = dataset_info(options.dataset);
  options.net.input_channels = info.channels;
  options.net.classes = info.classes;
}

json search_options_to_json(const SearchOptions& o) {
  json out = json::object();
  for_each_field(o, JsonFieldWriter{out});
  out["granularity"] = granularity_name(o.sampler.granularity);
  out["parametrisation"] = parametrisation_name(o.sampler.parametrisation);
  out["kernels"] = kernel_backend_name(o.net.kernels);
  return out;
}

SearchOptions search_options_from_json(const json& config, const std::string& source) {
  if (!config.is_object()) throw Error(source + ": expected a JSON object");
  SearchOptions o;
  for_each_field(o, JsonFieldReader{config, source});
  std::string granularity = granularity_name(o.sampler.granularity);
  std::string parametrisation = parametrisation_name(o.sampler.parametrisation);
  JsonFieldReader read{config, source};
  read("granularity", granularity);
  read("parametrisation", parametrisation);
  std::string kernels = kernel_backend_name(o.net.kernels);
  read("kernels", kernels);
  o.net.kernels = parse_kernel_backend(kernels);
  o.sampler.granularity = parse_granularity(granularity);
  o.sampler.parametrisation = parse_parametrisation(parametrisation);
  return o;
}

void validate_search_options(const SearchOptions& o) {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw Error(message);
  };
  require(o.task == "cnn" || o.task == "lm", "--task: expected cnn or lm, got '" + o.task + "'");
  if (o.task == "lm") validate_lm_options(o.lm);
  require(o.limit >= 0, "--limit: expected >= 0");
  require(o.train_portion > 0 && o.train_portion < 1, "--train-portion: expected in (0, 1)");
  require(o.epochs >= 1, "--epochs: expected >= 1");
  require(o.warmup_epochs >= 0 && o.warmup_epochs < o.epochs,
          "--warmup-epochs: expected 0 <= warmup < epochs");
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
  require(o.on_nonfinite == "stop" || o.on_nonfinite == "skip",
          "--on-nonfinite: expected stop or skip, got '" + o.on_nonfinite + "'");
  require(o.memory_limit_gib >= 0, "--memory-limit: expected >= 0 GiB (0 = MemAvailable)");
  require(o.gap_batches >= 0 && o.bn_recalibration_batches >= 0,
          "--gap-batches/--bn-recalibration-batches: expected >= 0");
}

}  // namespace datanas
