// What the shared search loop (search/searcher.cpp) needs from a task: its data, supernet,
// architecture parameters and optimisers, the three kinds of step on the task's own batches,
// the end-of-epoch measurement (derived genotype, gap, metric) and its checkpoint. The loop
// owns the epochs, temperature, learning-rate schedule, random streams, log, run files and
// resume. Two adapters: the CNN (image classification, cnn_search_task) and word-level
// language modelling (lm_search_task).
#pragma once
#include <ATen/core/Generator.h>
#include <torch/nn/module.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "sample/sampler.h"
#include "search/search_options.h"
#include "search/search_steps.h"
#include "space/genotype.h"

namespace datanas {

// Sums of the step results of one epoch.
struct EpochTotals {
  double train_loss = 0, val_loss = 0;
  int64_t train_correct = 0, train_seen = 0, val_correct = 0, val_seen = 0, steps = 0;
  int64_t skipped = 0;  // batches dropped by --on-nonfinite skip
  void add_train(const StepResult& r) {
    train_loss += r.loss;
    train_correct += r.correct;
    train_seen += r.seen;
  }
  void add_val(const StepResult& r) {
    val_loss += r.loss;
    val_correct += r.correct;
    val_seen += r.seen;
  }
};

struct EpochReport {
  Genotype genotype;
  nlohmann::json fields;  // the task's own log.jsonl fields of this epoch
  std::string summary;    // the end-of-epoch progress line
};

class SearchTask {
 public:
  virtual ~SearchTask() = default;
  virtual const Sampler& sampler() const = 0;
  // The supernet: its buffers are restored when --on-nonfinite skip drops a batch.
  virtual torch::nn::Module& network() = 0;
  // Name of the first weight, buffer or alpha holding a NaN or Inf ("" when none).
  virtual std::string first_nonfinite_state() const = 0;
  // Start of an epoch: weight learning rate, training mode, per-epoch state.
  virtual void begin_epoch(int epoch, double lr) = 0;
  virtual int64_t steps_per_epoch() const = 0;  // of the epoch begun last
  virtual StepResult architecture_step(int epoch, int64_t step, at::Generator& generator) = 0;
  virtual StepResult weight_step(int epoch, int64_t step, at::Generator& generator) = 0;
  virtual StepResult joint_step(int epoch, int64_t step, at::Generator& generator) = 0;
  // The running metrics shown on the progress line.
  virtual std::string progress_metrics(const EpochTotals& totals) const = 0;
  virtual EpochReport end_epoch(int epoch, const EpochTotals& totals) = 0;
  virtual nlohmann::json alphas_json() const = 0;
  virtual void save_checkpoint(const std::string& path, int epochs_done) const = 0;
  virtual int load_checkpoint(const std::string& path) = 0;  // returns epochs done
};

// The task of options.task ("cnn" or "lm"); loads its data. Fills data-dependent options
// (input channels, classes, vocabulary) before validating them.
std::unique_ptr<SearchTask> make_search_task(SearchOptions& options, const at::Device& device);
std::unique_ptr<SearchTask> make_cnn_search_task(SearchOptions& options, const at::Device& device);
std::unique_ptr<SearchTask> make_lm_search_task(SearchOptions& options, const at::Device& device);

}  // namespace datanas
