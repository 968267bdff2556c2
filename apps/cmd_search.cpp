#include <cstdio>

#include "commands.h"
#include "search/run_files.h"
#include "search/searcher.h"
#include "util/error.h"
#include "util/files.h"

namespace datanas::cli {

void add_search_flags(CLI::App& app, SearchFlags& f) {
  SearchOptions* o = &f.options;
  app.add_option("--dataset", o->dataset, "fashion-mnist | mnist | cifar10 | cifar100")
      ->capture_default_str();
  app.add_option("--data", o->data_dir, "data set folder (default: the data set's usual place)");
  app.add_option("--limit", o->limit, "training images used, split into train/validation (0 = all)")
      ->capture_default_str();
  app.add_option("--train-portion", o->train_portion, "share of the images in the training half")
      ->capture_default_str();
  app.add_option("--sampler", o->sampler.name, "egs | gdas (EGS with M=1) | darts (softmax)")
      ->capture_default_str();
  app.add_option("--M", o->sampler.M, "EGS draws per decision")->capture_default_str();
  app.add_option("--granularity", f.granularity, "edge | node (the extended cell space)")
      ->capture_default_str();
  app.add_option("--parametrisation", f.parametrisation, "softmax | relu")->capture_default_str();
  app.add_option("--weights", f.weights, "normalised (b/sum b) | plain-sum (b)")
      ->capture_default_str();
  app.add_option("--tau-max", o->sampler.tau_max, "initial temperature")->capture_default_str();
  app.add_option("--tau-min", o->sampler.tau_min, "final temperature")->capture_default_str();
  app.add_option("--adc-lambda", o->adc_lambda, "ADC weight (0 = off)")->capture_default_str();
  app.add_option("--mode", o->mode, "first-order | single-level")->capture_default_str();
  app.add_option("--epochs", o->epochs, "search epochs")->capture_default_str();
  app.add_option("--warmup-epochs", o->warmup_epochs, "first epochs that train weights only")
      ->capture_default_str();
  app.add_option("--batch-size", o->batch_size, "mini-batch size")->capture_default_str();
  app.add_option("--init-channels", o->net.init_channels, "channels of the first cells")
      ->capture_default_str();
  app.add_option("--layers", o->net.layers, "cells in the supernet")->capture_default_str();
  app.add_option("--nodes", o->net.nodes, "intermediate nodes per cell")->capture_default_str();
  app.add_option("--multiplier", o->net.multiplier, "nodes concatenated into the cell output")
      ->capture_default_str();
  app.add_option("--stem-multiplier", o->net.stem_multiplier, "stem width / init channels")
      ->capture_default_str();
  app.add_option("--lr", o->lr, "weight learning rate (cosine-annealed)")->capture_default_str();
  app.add_option("--lr-min", o->lr_min, "final weight learning rate")->capture_default_str();
  app.add_option("--momentum", o->momentum, "SGD momentum")->capture_default_str();
  app.add_option("--weight-decay", o->weight_decay, "SGD weight decay")->capture_default_str();
  app.add_option("--grad-clip", o->grad_clip, "weight gradient norm clip")->capture_default_str();
  app.add_option("--arch-lr", o->arch_lr, "Adam learning rate of alpha")->capture_default_str();
  app.add_option("--arch-weight-decay", o->arch_weight_decay, "Adam weight decay of alpha")
      ->capture_default_str();
  app.add_option("--gap-batches", o->gap_batches,
                 "validation batches per gap measurement (0 = all)")
      ->capture_default_str();
  app.add_option("--bn-recalibration-batches", o->bn_recalibration_batches,
                 "training batches that recalibrate BN for derived_acc (0 = raw only)")
      ->capture_default_str();
  app.add_option("--exec", o->exec, "fast (only what the code needs) | dense (all ops)")
      ->capture_default_str();
  app.add_option("--seed", o->seed, "seed of weights, alphas, data order and sampling")
      ->capture_default_str();
  app.add_option("--threads", o->threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--device", o->device, "cpu | cuda | cuda:N")->capture_default_str();
  app.add_option("--kernels", f.kernels,
                 "native (own CPU kernels, the widest SIMD the CPU has; environment variable "
                 "DATANAS_CPU_CAPABILITY=avx2|portable narrows it) | torch (LibTorch's; always "
                 "used off the CPU)")
      ->capture_default_str();
  app.add_option("--on-nonfinite", o->on_nonfinite,
                 "NaN/Inf loss or gradient: stop (keep the last checkpoint) | skip the batch")
      ->capture_default_str();
  app.add_option("--memory-limit", o->memory_limit_gib,
                 "GiB the run may use (0 = MemAvailable); larger runs are refused up front")
      ->capture_default_str();
  add_memory_format_flag(app, f.memory_format);
}

void add_memory_format_flag(CLI::App& app, std::string& memory_format) {
  app.add_option("--memory-format", memory_format,
                 "auto (NHWC on CPU: both backends are fastest on it) | channels-last | nchw")
      ->capture_default_str();
}

SearchOptions resolve_search_flags(const SearchFlags& f) {
  SearchOptions options = f.options;
  options.sampler.granularity = parse_granularity(f.granularity);
  options.sampler.parametrisation = parse_parametrisation(f.parametrisation);
  if (f.weights != "normalised" && f.weights != "plain-sum")
    throw Error("--weights: expected normalised or plain-sum, got '" + f.weights + "'");
  options.sampler.plain_sum = f.weights == "plain-sum";
  options.net.kernels = parse_kernel_backend(f.kernels);
  options.net.channels_last = channels_last_for(f.memory_format);
  return options;
}

void print_search_result(const SearchResult& result, const SearchOptions& options) {
  const auto& last = result.last_epoch;
  std::printf("derived architecture (%s):\n%s\n", options.sampler.name.c_str(),
              genotype_to_json(result.genotype).c_str());
  std::printf(
      "validation accuracy: search %.2f%%, derived %.2f%% (raw BN %.2f%%), gap %.2f points\n",
      100 * last["search_acc"].get<double>(), 100 * last["derived_acc"].get<double>(),
      100 * last["derived_acc_raw"].get<double>(), 100 * last["gap"].get<double>());
}

Command add_search(CLI::App& app) {
  auto flags = std::make_shared<SearchFlags>();
  auto resume = std::make_shared<bool>(false);
  add_search_flags(app, *flags);
  app.add_option("--task", flags->options.task,
                 "cnn (image classification) | lm (word-level language modelling: DARTS "
                 "recurrent cell; --data is a PTB-layout folder, --limit counts tokens, LM "
                 "defaults for flags not given)")
      ->capture_default_str();
  add_lm_flags(app, flags->options.lm);
  app.add_option("--out", flags->options.out, "run folder for every output")->capture_default_str();
  app.add_flag("--resume", *resume, "continue the run in --out from its checkpoint");
  CLI::Option* epochs_flag = app.get_option("--epochs");
  CLI::Option* nonfinite_flag = app.get_option("--on-nonfinite");
  CLI::Option* memory_flag = app.get_option("--memory-limit");
  CLI::App* self = &app;
  return [=]() {
    if (flags->options.task == "lm") apply_lm_search_defaults(*self, flags->options);
    SearchOptions options = resolve_search_flags(*flags);
    const SearchOptions& o = flags->options;
    if (*resume) {
      // The run's own config decides; only --epochs may extend it, and the policies that do
      // not change results (--on-nonfinite, --memory-limit) may be set again.
      options = search_options_from_json(read_run_config(o.out), run_file(o.out, "config.json"));
      options.out = o.out;
      if (epochs_flag->count()) options.epochs = o.epochs;
      if (nonfinite_flag->count()) options.on_nonfinite = o.on_nonfinite;
      if (memory_flag->count()) options.memory_limit_gib = o.memory_limit_gib;
    }
    SearchResult result = run_search(options, *resume);
    if (options.task == "lm") {
      const auto& last = result.last_epoch;
      std::printf("derived cell (%s):\n%s\n", options.sampler.name.c_str(),
                  genotype_to_json(result.genotype).c_str());
      std::printf("valid perplexity: search %.2f, derived %.2f (gap %.2f); test %.2f\n",
                  last["search_ppl"].get<double>(), last["derived_ppl"].get<double>(),
                  last["gap"].get<double>(), last["test_ppl"].get<double>());
      std::printf("outputs: %s/{genotype.json,log.jsonl,alphas.json,config.json,checkpoint.pt}\n",
                  options.out.c_str());
      return 0;
    }
    print_search_result(result, options);
    std::printf("outputs: %s/{genotype.json,log.jsonl,alphas.json,config.json,checkpoint.pt}\n",
                options.out.c_str());
    return 0;
  };
}

}  // namespace datanas::cli
