#include "tasks/lm_trainer.h"

#include <ATen/ATen.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/sgd.h>
#include <torch/serialize.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "search/run_files.h"
#include "tasks/lm_common.h"
#include "util/error.h"
#include "util/files.h"
#include "util/progress.h"
#include "util/runtime.h"
#include "util/schedule.h"

namespace datanas {
using nlohmann::json;

namespace {

void save_checkpoint(const std::string& path, RnnModel& model, torch::optim::SGD& optimizer,
                     int epochs_done) {
  torch::serialize::OutputArchive archive, weights, opt;
  model->save(weights);
  optimizer.save(opt);
  archive.write("weights", weights);
  archive.write("optimizer", opt);
  archive.write("epochs_done", at::tensor(int64_t{epochs_done}));
  write_file_atomic_with(path, [&](const std::string& temp) { archive.save_to(temp); });
}

int load_checkpoint(const std::string& path, RnnModel& model, torch::optim::SGD& optimizer) {
  if (!file_exists(path)) throw Error(path + ": no checkpoint to resume from");
  try {
    torch::serialize::InputArchive archive, weights, opt;
    archive.load_from(path);
    archive.read("weights", weights);
    archive.read("optimizer", opt);
    model->load(weights);
    optimizer.load(opt);
    at::Tensor epochs_done;
    archive.read("epochs_done", epochs_done);
    return static_cast<int>(epochs_done.item<int64_t>());
  } catch (const c10::Error&) {
    throw Error(path + ": not a language-model training checkpoint of this configuration");
  }
}

}  // namespace

LmTrainResult run_lm_training(const TrainOptions& requested, bool resume) {
  TrainOptions options = requested;
  validate_train_options(options);
  const at::Device device = parse_device(options.device);
  const int threads = configure_threads(options.threads);
  warn_if_reference_blas();
  Genotype genotype;
  if (options.arch == "darts") {
    genotype = load_genotype(options.genotype);
    if (!genotype.is_recurrent())
      throw Error("--genotype " + options.genotype +
                  ": a CNN cell; --task lm needs a darts-rnn genotype (e.g. DARTS_RNN)");
  }
  Corpus corpus = load_lm_corpus(options.data_dir);
  const RunFolder folder = open_run_folder(options.out);
  json config = train_options_to_json(options);
  config["resolved_threads"] = threads;
  config["vocab"] = corpus.vocab.size();
  if (options.arch == "darts")
    config["genotype_resolved"] = json::parse(genotype_to_json(genotype));
  write_json_file(folder.config, config);

  const LmOptions& lm = options.lm;
  const at::Tensor train = batchify(limit_tokens(corpus.train, options.limit), options.batch_size);
  const at::Tensor valid = batchify(limit_tokens(corpus.valid, lm.eval_limit), lm.eval_batch_size);
  const at::Tensor test =
      batchify(limit_tokens(corpus.test, options.test_limit), lm.eval_batch_size);
  RnnModelOptions model_options = lm.model;
  model_options.vocab = corpus.vocab.size();
  torch::manual_seed(options.seed);
  RnnModel model(options.arch, model_options, genotype, rnn_cell_space(8));
  model->to(device);
  for (auto& p : model->parameters()) p.mutable_grad() = at::zeros_like(p);
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(options.lr)
                                                       .momentum(options.momentum)
                                                       .weight_decay(options.weight_decay));
  std::vector<json> log;
  int epochs_done = 0;
  if (resume) {
    epochs_done = load_checkpoint(folder.checkpoint, model, optimizer);
    log = read_log_lines(folder.log);
    log.resize(std::min<size_t>(log.size(), epochs_done));
    std::fprintf(stderr, "resuming after epoch %d of %d\n", epochs_done, options.epochs);
  }
  const int64_t params = count_lm_parameters(*model);
  std::fprintf(stderr,
               "datanas train --task lm: %s, %lld parameters, vocabulary %lld, %lld training "
               "tokens\n",
               options.arch == "lstm" ? "LSTM" : options.genotype.c_str(),
               static_cast<long long>(params), static_cast<long long>(corpus.vocab.size()),
               static_cast<long long>(train.numel()));

  for (int epoch = epochs_done; epoch < options.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const double lr = cosine_annealing(options.lr, 0.0, epoch, options.epochs);
    torch::manual_seed(options.seed * 1000003ULL + epoch);  // dropout masks, exact on resume
    const std::vector<BpttWindow> windows =
        bptt_windows(train.size(0), lm.bptt, lm.variable_bptt, options.seed * 7919ULL + epoch);
    model->train();
    LmHidden hidden = model->initial_hidden(train.size(1), device);
    double loss_sum = 0;
    int64_t tokens = 0;
    Progress progress("train " + std::to_string(epoch + 1) + "/" + std::to_string(options.epochs),
                      static_cast<int64_t>(windows.size()));
    for (size_t i = 0; i < windows.size(); ++i) {
      const BpttWindow& w = windows[i];
      LmBatch batch = lm_batch(train, w.start, w.length);
      hidden = hidden.detached();
      at::Tensor logits = model->forward(batch.input.to(device), hidden);
      at::Tensor loss = at::cross_entropy_loss(logits, batch.target.to(device));
      const double value = loss.item<double>();
      if (!std::isfinite(value))
        throw Error("epoch " + std::to_string(epoch + 1) + " step " + std::to_string(i + 1) +
                    ": loss is not finite; last good checkpoint: " +
                    (file_exists(folder.checkpoint) ? folder.checkpoint : "none"));
      optimizer.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(model->parameters(), options.grad_clip);
      set_learning_rate(optimizer, lr * w.length / lm.bptt);
      optimizer.step();
      loss_sum += value * batch.target.size(0);
      tokens += batch.target.size(0);
      char metrics[64];
      std::snprintf(metrics, sizeof metrics, "loss %.3f ppl %.1f", loss_sum / tokens,
                    std::exp(loss_sum / tokens));
      progress.update(static_cast<int64_t>(i + 1), metrics);
    }
    const double val_ppl = evaluate_perplexity(model, valid, lm.bptt, nullptr, device);
    const double test_ppl = evaluate_perplexity(model, test, lm.bptt, nullptr, device);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char summary[128];
    std::snprintf(summary, sizeof summary, "train ppl %.1f | valid ppl %.2f | test ppl %.2f",
                  std::exp(loss_sum / tokens), val_ppl, test_ppl);
    progress.finish(summary);
    log.push_back({{"epoch", epoch + 1},
                   {"lr", lr},
                   {"train_loss", loss_sum / tokens},
                   {"train_ppl", std::exp(loss_sum / tokens)},
                   {"val_ppl", val_ppl},
                   {"test_ppl", test_ppl},
                   {"seconds", seconds}});
    write_log_lines(folder.log, log);
    save_checkpoint(folder.checkpoint, model, optimizer, epoch + 1);
  }
  LmTrainResult result;
  result.model_path = run_file(options.out, "model.pt");
  result.params = params;
  write_file_atomic_with(result.model_path, [&](const std::string& temp) {
    torch::serialize::OutputArchive archive;
    model->save(archive);
    archive.save_to(temp);
  });
  if (log.empty()) throw Error(folder.log + ": no epoch recorded");
  result.last_epoch = log.back();
  return result;
}

}  // namespace datanas
