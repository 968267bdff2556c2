#include "search/gap.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/batchnorm.h>

namespace datanas {

double evaluate_accuracy(Supernet& model, const ImageLoader& loader, int64_t epoch,
                         int64_t batches,
                         const std::function<std::pair<CellWeights, CellWeights>()>& weights,
                         const at::Device& device) {
  at::NoGradGuard no_grad;
  model->eval();
  const int64_t count = batches > 0 ? std::min(batches, loader.batches_per_epoch())
                                    : loader.batches_per_epoch();
  int64_t correct = 0, seen = 0;
  for (int64_t b = 0; b < count; ++b) {
    Batch batch = loader.batch(epoch, b);
    auto [normal, reduce] = weights();
    at::Tensor logits =
        model->forward(batch.images.to(device), normal, reduce, ExecMode::kSelected);
    correct += logits.argmax(1).eq(batch.labels.to(device)).sum().item<int64_t>();
    seen += batch.labels.size(0);
  }
  return seen ? static_cast<double>(correct) / seen : 0.0;
}

namespace {

// Saves BN running statistics on construction and puts them back on destruction, so the gap
// measurement leaves the supernet exactly as the search left it.
class BatchNormSnapshot {
 public:
  explicit BatchNormSnapshot(Supernet& model) {
    for (auto& module : model->modules(/*include_self=*/false)) {
      if (auto bn = std::dynamic_pointer_cast<torch::nn::BatchNorm2dImpl>(module)) {
        if (!bn->options.track_running_stats()) continue;
        saved_.push_back({bn, bn->running_mean.clone(), bn->running_var.clone(),
                          bn->num_batches_tracked.clone(), bn->options.momentum()});
      }
    }
  }
  ~BatchNormSnapshot() {
    at::NoGradGuard no_grad;
    for (auto& s : saved_) {
      s.bn->running_mean.copy_(s.mean);
      s.bn->running_var.copy_(s.var);
      s.bn->num_batches_tracked.copy_(s.tracked);
      s.bn->options.momentum(s.momentum);
    }
  }
  // Cumulative averages from zero, as single-path one-shot NAS recalibrates.
  void reset_for_recalibration() {
    for (auto& s : saved_) {
      s.bn->reset_running_stats();
      s.bn->options.momentum(c10::nullopt);
    }
  }

 private:
  struct Saved {
    std::shared_ptr<torch::nn::BatchNorm2dImpl> bn;
    at::Tensor mean, var, tracked;
    c10::optional<double> momentum;
  };
  std::vector<Saved> saved_;
};

}  // namespace

static CellWeights on_device(CellWeights weights, const at::Device& device) {
  weights.weights = weights.weights.to(device);
  return weights;
}

GapResult measure_gap(Supernet& model, const Sampler& sampler, const at::Tensor& alpha_normal,
                      const at::Tensor& alpha_reduce, const Genotype& derived,
                      const ImageLoader& validation, const ImageLoader& training,
                      const GapOptions& options, const at::Device& device) {
  GapResult result;
  at::Generator generator =
      at::detail::createCPUGenerator(options.seed * 1000003ULL + options.epoch * 7919ULL + 17);
  auto sampled = [&]() {
    at::NoGradGuard no_grad;
    return std::make_pair(sampler.sample(alpha_normal, generator),
                          sampler.sample(alpha_reduce, generator));
  };
  const auto derived_weights = std::make_pair(on_device(sampler.fixed(derived.normal), device),
                                              on_device(sampler.fixed(derived.reduce), device));
  auto fixed = [&]() { return derived_weights; };

  result.search_acc =
      evaluate_accuracy(model, validation, options.epoch, options.batches, sampled, device);
  result.derived_acc_raw =
      evaluate_accuracy(model, validation, options.epoch, options.batches, fixed, device);
  result.derived_acc = result.derived_acc_raw;
  if (options.recalibration_batches == 0) return result;

  BatchNormSnapshot snapshot(model);
  snapshot.reset_for_recalibration();
  {
    at::NoGradGuard no_grad;
    model->train();
    const int64_t count = std::min(options.recalibration_batches, training.batches_per_epoch());
    for (int64_t b = 0; b < count; ++b) {
      Batch batch = training.batch(options.epoch, b);
      model->forward(batch.images.to(device), derived_weights.first, derived_weights.second,
                     ExecMode::kSelected);
    }
  }
  result.derived_acc =
      evaluate_accuracy(model, validation, options.epoch, options.batches, fixed, device);
  return result;
}

}  // namespace datanas
