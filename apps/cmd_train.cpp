#include <cstdio>

#include "commands.h"
#include "data/datasets.h"
#include "report/figures.h"
#include "search/run_files.h"
#include "tasks/lm_trainer.h"
#include "train/model_file.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/files.h"
#include "util/runtime.h"

namespace datanas::cli {

void add_train_flags(CLI::App& app, TrainOptions& o) {
  app.add_option("--genotype", o.genotype, "genotype JSON file or built-in name")
      ->capture_default_str();
  app.add_option("--network", o.network, "cifar | imagenet")->capture_default_str();
  app.add_option("--dataset", o.dataset, "fashion-mnist | mnist | cifar10 | cifar100")
      ->capture_default_str();
  app.add_option("--data", o.data_dir, "data set folder (default: the data set's usual place)");
  app.add_option("--limit", o.limit, "training images used (0 = all)")->capture_default_str();
  app.add_option("--test-limit", o.test_limit, "test images used (0 = all)")->capture_default_str();
  app.add_option("--init-channels", o.init_channels, "channels of the first cells")
      ->capture_default_str();
  app.add_option("--layers", o.layers, "cells")->capture_default_str();
  app.add_option("--auxiliary-weight", o.auxiliary_weight, "auxiliary head loss weight (0 = off)")
      ->capture_default_str();
  app.add_option("--drop-path", o.drop_path, "final drop-path probability (ramped from 0)")
      ->capture_default_str();
  app.add_option("--cutout", o.cutout, "cutout square side (0 = off)")->capture_default_str();
  app.add_option("--epochs", o.epochs, "training epochs")->capture_default_str();
  app.add_option("--batch-size", o.batch_size, "mini-batch size")->capture_default_str();
  app.add_option("--lr", o.lr, "initial learning rate (cosine to 0)")->capture_default_str();
  app.add_option("--momentum", o.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "SGD weight decay")->capture_default_str();
  app.add_option("--grad-clip", o.grad_clip, "gradient norm clip")->capture_default_str();
  app.add_option("--seed", o.seed, "seed of weights, data order and drop-path")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads (0 = all cores)")->capture_default_str();
  app.add_option("--device", o.device, "cpu | cuda | cuda:N")->capture_default_str();
  add_memory_format_flag(app, o.memory_format);
  app.add_option("--on-nonfinite", o.on_nonfinite,
                 "NaN/Inf loss or gradient: stop (keep the last checkpoint) | skip the batch")
      ->capture_default_str();
  app.add_option("--memory-limit", o.memory_limit_gib,
                 "GiB the run may use (0 = MemAvailable); larger runs are refused up front")
      ->capture_default_str();
  app.add_option("--kernels", o.kernels,
                 "native (own CPU kernels, the widest SIMD the CPU has; environment variable "
                 "DATANAS_CPU_CAPABILITY=avx2|portable narrows it) | torch (LibTorch's; always "
                 "used off the CPU)")
      ->capture_default_str();
}

void plot_training(const std::string& out_dir) {
  const std::string log = run_file(out_dir, "log.jsonl");
  plot_log(log, run_file(out_dir, "accuracy.png"), "accuracy", {"train_acc", "test_acc"});
  plot_log(log, run_file(out_dir, "loss.png"), "loss", {"train_loss", "test_loss"});
}

Command add_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  auto resume = std::make_shared<bool>(false);
  add_train_flags(app, *o);
  app.add_option("--task", o->task,
                 "cnn | lm (word-level language model of a darts-rnn genotype, or --arch lstm; "
                 "LM defaults for flags not given)")
      ->capture_default_str();
  app.add_option("--arch", o->arch, "task lm: darts (the genotype's cell) | lstm (baseline)")
      ->capture_default_str();
  app.add_option("--lstm-layers", o->lm.model.lstm_layers, "task lm, --arch lstm: layers")
      ->capture_default_str();
  add_lm_flags(app, o->lm);
  app.add_option("--out", o->out, "run folder")->capture_default_str();
  app.add_flag("--resume", *resume, "continue the run in --out from its checkpoint");
  CLI::Option* epochs_flag = app.get_option("--epochs");
  CLI::Option* nonfinite_flag = app.get_option("--on-nonfinite");
  CLI::Option* memory_flag = app.get_option("--memory-limit");
  CLI::App* self = &app;
  return [=]() {
    if (o->task == "lm") apply_lm_train_defaults(*self, *o);
    TrainOptions options = *o;
    if (*resume) {
      options = train_options_from_json(read_run_config(o->out), run_file(o->out, "config.json"));
      options.out = o->out;
      if (epochs_flag->count()) options.epochs = o->epochs;
      // Policies that do not change results may be set again on resume.
      if (nonfinite_flag->count()) options.on_nonfinite = o->on_nonfinite;
      if (memory_flag->count()) options.memory_limit_gib = o->memory_limit_gib;
    }
    if (options.task == "lm") {
      LmTrainResult result = run_lm_training(options, *resume);
      std::printf("valid perplexity %.2f, test perplexity %.2f, %lld parameters\nmodel: %s\n",
                  result.last_epoch["val_ppl"].get<double>(),
                  result.last_epoch["test_ppl"].get<double>(),
                  static_cast<long long>(result.params), result.model_path.c_str());
      return 0;
    }
    TrainResult result = run_training(options, *resume);
    plot_training(options.out);
    std::printf("test accuracy %.2f%% (top-5 %.2f%%), %lld parameters\nmodel: %s\n",
                100 * result.last_epoch["test_acc"].get<double>(),
                100 * result.last_epoch["test_top5"].get<double>(),
                static_cast<long long>(result.params), result.model_path.c_str());
    return 0;
  };
}

Command add_eval(CLI::App& app) {
  auto model_path = std::make_shared<std::string>();
  auto dataset = std::make_shared<std::string>();
  auto data_dir = std::make_shared<std::string>();
  auto limit = std::make_shared<int64_t>(0);
  auto batch_size = std::make_shared<int64_t>(256);
  auto device = std::make_shared<std::string>("cpu");
  auto threads = std::make_shared<int>(0);
  app.add_option("--model", *model_path, "model.pt written by datanas train")->required();
  app.add_option("--dataset", *dataset, "data set (default: the one it was trained on)");
  app.add_option("--data", *data_dir, "data set folder");
  app.add_option("--limit", *limit, "test images used (0 = all)")->capture_default_str();
  app.add_option("--batch-size", *batch_size, "batch size")->capture_default_str();
  app.add_option("--device", *device, "cpu | cuda | cuda:N")->capture_default_str();
  app.add_option("--threads", *threads, "CPU threads (0 = all cores)")->capture_default_str();
  return [=]() {
    const c10::Device dev = parse_device(*device);
    configure_threads(*threads);
    ModelFile model = load_model_file(*model_path);
    const std::string name = dataset->empty() ? model.dataset : *dataset;
    const DatasetInfo& info = dataset_info(name);
    ImageSet images = load_dataset(name, *data_dir,
                                   /*train=*/false, *limit);
    LoaderOptions loading;
    loading.batch_size = *batch_size;
    loading.shuffle = false;
    ImageLoader loader(images, split_indices(images.count, 1.0).first, info, loading);
    model.network->to(dev);
    Evaluation result = evaluate_network(model.network, loader, dev);
    std::printf(
        "{\"test_acc\": %.6f, \"test_top5\": %.6f, \"test_loss\": %.6f, \"images\": %lld}\n",
        result.top1, result.top5, result.loss, static_cast<long long>(result.seen));
    return 0;
  };
}

}  // namespace datanas::cli
