// The image-classification search task: the DARTS CNN supernet on an image data set split into
// training and validation halves, the steps of search/search_steps.h and the accuracy gap of
// search/gap.h.
#include <ATen/ATen.h>

#include <cmath>
#include <cstdio>

#include "data/datasets.h"
#include "data/loader.h"
#include "search/gap.h"
#include "search/run_files.h"
#include "search/search_memory.h"
#include "search/search_state.h"
#include "search/searcher.h"
#include "tasks/search_task.h"
#include "util/error.h"
#include "util/finite.h"
#include "util/schedule.h"
#include "util/test_hooks.h"

namespace datanas {
using nlohmann::json;

namespace {

std::string percent(int64_t correct, int64_t seen) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%", seen ? 100.0 * correct / seen : 0.0);
  return text;
}

class CnnSearchTask : public SearchTask {
 public:
  CnnSearchTask(SearchOptions& options, const at::Device& device)
      : options_(options), device_(device), info_(dataset_info(options.dataset)) {
    const std::string data_dir = options.data_dir.empty() ? info_.default_dir : options.data_dir;
    std::fprintf(stderr,
                 "datanas search: %s from %s, limit %lld, sampler %s (M=%d, %s), seed %llu\n",
                 options.dataset.c_str(), data_dir.c_str(), static_cast<long long>(options.limit),
                 options.sampler.name.c_str(), options.sampler.M,
                 granularity_name(options.sampler.granularity).c_str(),
                 static_cast<unsigned long long>(options.seed));
    const uint64_t data_bytes = check_search_data_memory(options, data_dir);
    // The loaders keep their own normalised copies of the images.
    ImageSet images = load_dataset(options.dataset, data_dir, /*train=*/true, options.limit);
    auto [train_indices, val_indices] = split_indices(images.count, options.train_portion);
    if (train_indices.empty() || val_indices.empty())
      throw Error("--limit/--train-portion: both the training and validation halves need images");
    LoaderOptions loader_options;
    loader_options.batch_size = options.batch_size;
    loader_options.augment = info_.augment_crop_flip;
    loader_options.seed = options.seed;
    train_loader_ = std::make_unique<ImageLoader>(images, train_indices, info_, loader_options);
    loader_options.seed = options.seed + 1;
    val_loader_ = std::make_unique<ImageLoader>(images, val_indices, info_, loader_options);
    sampler_ = make_sampler(options.sampler, cnn_cell_space(options.net.nodes));
    state_ = make_search_state(options, *sampler_, device);
    int64_t parameters = 0;
    for (const auto& p : state_.model->parameters()) parameters += p.numel();
    check_search_step_memory(options, parameters, data_bytes);
    context_ = std::make_unique<StepContext>(StepContext{options_, *sampler_, state_, device_});
  }

  const Sampler& sampler() const override { return *sampler_; }
  torch::nn::Module& network() override { return *state_.model; }
  std::string first_nonfinite_state() const override {
    std::string bad = first_nonfinite_tensor(*state_.model);
    if (bad.empty() && !(at::isfinite(state_.alpha_normal).all().item<bool>() &&
                         at::isfinite(state_.alpha_reduce).all().item<bool>()))
      bad = "alpha";
    return bad;
  }
  int64_t steps_per_epoch() const override { return train_loader_->batches_per_epoch(); }

  void begin_epoch(int, double lr) override {
    set_learning_rate(*state_.weight_optimizer, lr);
    state_.model->train();
  }

  StepResult architecture_step(int epoch, int64_t step, at::Generator& generator) override {
    Batch val_batch = val_loader_->batch(epoch, step % val_loader_->batches_per_epoch());
    return datanas::architecture_step(*context_, with_faults(val_batch, epoch, step), generator);
  }
  StepResult weight_step(int epoch, int64_t step, at::Generator& generator) override {
    Batch batch = with_faults(train_loader_->batch(epoch, step), epoch, step);
    return datanas::weight_step(*context_, batch, generator);
  }
  StepResult joint_step(int epoch, int64_t step, at::Generator& generator) override {
    Batch batch = with_faults(train_loader_->batch(epoch, step), epoch, step);
    return datanas::joint_step(*context_, batch, generator);
  }

  std::string progress_metrics(const EpochTotals& totals) const override {
    return "loss " + std::to_string(totals.train_loss / totals.steps).substr(0, 5) + " acc " +
           percent(totals.train_correct, totals.train_seen);
  }

  EpochReport end_epoch(int epoch, const EpochTotals& totals) override {
    at::Tensor probs_normal, probs_reduce;
    {
      at::NoGradGuard no_grad;
      probs_normal = sampler_->probabilities(state_.alpha_normal);
      probs_reduce = sampler_->probabilities(state_.alpha_reduce);
    }
    EpochReport report;
    report.genotype =
        derive_genotype(*sampler_, probs_normal, probs_reduce, options_.net.multiplier);
    GapOptions gap_options{options_.gap_batches, options_.bn_recalibration_batches, epoch,
                           options_.seed};
    GapResult gap = measure_gap(state_.model, *sampler_, state_.alpha_normal.detach(),
                                state_.alpha_reduce.detach(), report.genotype, *val_loader_,
                                *train_loader_, gap_options, device_);
    const int64_t steps = totals.steps;
    report.fields = {
        {"train_acc", totals.train_seen ? double(totals.train_correct) / totals.train_seen : 0.0},
        {"search_acc", gap.search_acc},
        {"derived_acc", gap.derived_acc},
        {"derived_acc_raw", gap.derived_acc_raw},
        {"gap", gap.gap()},
        {"entropy_normal", mean_group_entropy(probs_normal, *sampler_)},
        {"entropy_reduce", mean_group_entropy(probs_reduce, *sampler_)},
    };
    report.fields["entropy"] = (report.fields["entropy_normal"].get<double>() +
                                report.fields["entropy_reduce"].get<double>()) /
                               2;
    if (totals.val_seen) {
      report.fields["val_loss"] = totals.val_loss / std::max<int64_t>(1, steps);
      report.fields["val_acc"] = double(totals.val_correct) / totals.val_seen;
    }
    report.summary = "train acc " + percent(totals.train_correct, totals.train_seen) +
                     " | search acc " + percent(std::lround(gap.search_acc * 1000), 1000) +
                     " | derived acc " + percent(std::lround(gap.derived_acc * 1000), 1000) +
                     " (raw " + percent(std::lround(gap.derived_acc_raw * 1000), 1000) + ")";
    return report;
  }

  json alphas_json() const override {
    at::NoGradGuard no_grad;
    json out = {{"format", "datanas-alphas/1"},
                {"granularity", granularity_name(sampler_->options().granularity)},
                {"parametrisation", parametrisation_name(sampler_->options().parametrisation)}};
    for (auto [name, alpha] : {std::make_pair("normal", state_.alpha_normal),
                               std::make_pair("reduce", state_.alpha_reduce)}) {
      out[name] = {{"alpha", tensor_to_json(alpha)},
                   {"probs", tensor_to_json(sampler_->probabilities(alpha))}};
    }
    return out;
  }

  void save_checkpoint(const std::string& path, int epochs_done) const override {
    SearchState& state = const_cast<SearchState&>(state_);
    state.epochs_done = epochs_done;
    save_search_checkpoint(path, state);
  }
  int load_checkpoint(const std::string& path) override {
    load_search_checkpoint(path, state_);
    return state_.epochs_done;
  }

 private:
  // Test hook (DATANAS_TEST_FAULT): poisons the batch or the gradients of a chosen step.
  Batch with_faults(Batch batch, int epoch, int64_t step) {
    const InjectedFault& fault = injected_fault();
    context_->poison_gradients = fault.hits("grad", epoch, step);
    if (fault.hits("loss", epoch, step)) batch.images = poisoned_images(batch.images);
    return batch;
  }

  SearchOptions& options_;
  at::Device device_;
  const DatasetInfo& info_;
  std::unique_ptr<ImageLoader> train_loader_, val_loader_;
  std::unique_ptr<Sampler> sampler_;
  SearchState state_;
  std::unique_ptr<StepContext> context_;
};

}  // namespace

std::unique_ptr<SearchTask> make_cnn_search_task(SearchOptions& options, const at::Device& device) {
  return std::make_unique<CnnSearchTask>(options, device);
}

}  // namespace datanas
