// The language-modelling search task: the DARTS recurrent search cell in a word-level model.
// train.txt (its first --limit tokens) is split by --train-portion into a weight stream and an
// architecture stream; each epoch then reports perplexities on valid.txt of the supernet with
// freshly sampled architectures (search_ppl) and of the same weights with the derived cell
// (derived_ppl = val_ppl), the derived cell's test.txt perplexity (test_ppl), and the gap
// derived_ppl - search_ppl. Hidden states run on across BPTT windows (detached) and restart
// every epoch.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>
#include <torch/serialize.h>

#include <cmath>
#include <cstdio>

#include "sample/adc.h"
#include "search/run_files.h"
#include "search/search_state.h"
#include "search/search_steps.h"
#include "search/searcher.h"
#include "tasks/lm_common.h"
#include "tasks/search_task.h"
#include "util/error.h"
#include "util/files.h"
#include "util/finite.h"
#include "util/schedule.h"
#include "util/zip_check.h"

namespace datanas {
using nlohmann::json;

namespace {

class LmSearchTask : public SearchTask {
 public:
  LmSearchTask(SearchOptions& options, const at::Device& device)
      : options_(options), device_(device) {
    warn_if_reference_blas();
    const std::string dir = options.data_dir.empty() ? default_lm_corpus_dir() : options.data_dir;
    Corpus corpus = load_lm_corpus(options.data_dir);
    at::Tensor train = limit_tokens(corpus.train, options.limit);
    const int64_t split = std::llround(train.size(0) * options.train_portion);
    weight_stream_ = batchify(train.slice(0, 0, split), options.batch_size);
    arch_stream_ = batchify(train.slice(0, split), options.batch_size);
    const int64_t eval_batch = options.lm.eval_batch_size;
    valid_stream_ = batchify(limit_tokens(corpus.valid, options.lm.eval_limit), eval_batch);
    test_stream_ = batchify(limit_tokens(corpus.test, options.lm.eval_limit), eval_batch);
    std::fprintf(stderr,
                 "datanas search --task lm: %s, vocabulary %lld, %lld + %lld training tokens, "
                 "sampler %s (M=%d, %s), seed %llu\n",
                 dir.c_str(), static_cast<long long>(corpus.vocab.size()),
                 static_cast<long long>(split), static_cast<long long>(train.size(0) - split),
                 options.sampler.name.c_str(), options.sampler.M,
                 granularity_name(options.sampler.granularity).c_str(),
                 static_cast<unsigned long long>(options.seed));

    sampler_ = make_sampler(options.sampler, rnn_cell_space(options.net.nodes));
    RnnModelOptions model_options = options.lm.model;
    model_options.vocab = corpus.vocab.size();
    torch::manual_seed(options.seed);
    model_ = RnnModel("search", model_options, Genotype{}, sampler_->space());
    model_->to(device);
    at::Generator generator = at::detail::createCPUGenerator(options.seed ^ 0xa1fa5eedULL);
    alpha_ = sampler_->initial_alpha(generator).to(device).set_requires_grad(true);
    for (auto& p : model_->parameters()) p.mutable_grad() = at::zeros_like(p);
    weight_optimizer_ = std::make_unique<torch::optim::SGD>(
        model_->parameters(), torch::optim::SGDOptions(options.lr)
                                  .momentum(options.momentum)
                                  .weight_decay(options.weight_decay));
    arch_optimizer_ = std::make_unique<torch::optim::Adam>(
        std::vector<at::Tensor>{alpha_}, torch::optim::AdamOptions(options.arch_lr)
                                             .betas({options.arch_beta1, options.arch_beta2})
                                             .weight_decay(options.arch_weight_decay));
  }

  const Sampler& sampler() const override { return *sampler_; }
  torch::nn::Module& network() override { return *model_; }
  std::string first_nonfinite_state() const override {
    std::string bad = first_nonfinite_tensor(*model_);
    if (bad.empty() && !at::isfinite(alpha_).all().item<bool>()) bad = "alpha";
    return bad;
  }
  int64_t steps_per_epoch() const override { return static_cast<int64_t>(windows_.size()); }

  void begin_epoch(int epoch, double lr) override {
    lr_ = lr;
    model_->train();
    windows_ = bptt_windows(weight_stream_.size(0), options_.lm.bptt, options_.lm.variable_bptt,
                            options_.seed * 1000003ULL + epoch);
    arch_windows_ = bptt_windows(arch_stream_.size(0), options_.lm.bptt, false, 0);
    weight_hidden_ = model_->initial_hidden(weight_stream_.size(1), device_);
    arch_hidden_ = model_->initial_hidden(arch_stream_.size(1), device_);
    // Dropout masks come from the global generator: reseeded per epoch for exact resumes.
    torch::manual_seed(options_.seed * 1000003ULL + epoch);
  }

  StepResult architecture_step(int, int64_t step, at::Generator& generator) override {
    const BpttWindow& w = arch_windows_[step % arch_windows_.size()];
    if (step % arch_windows_.size() == 0 && step > 0)
      arch_hidden_ = model_->initial_hidden(arch_stream_.size(1), device_);
    at::Tensor loss = forward(arch_stream_, w, arch_hidden_, generator, true,
                              dense() ? ExecMode::kDense : ExecMode::kArchitecture);
    StepResult r = summarise(loss, w, arch_stream_);
    arch_optimizer_->zero_grad();
    if (dense()) {
      weight_optimizer_->zero_grad();
      loss.backward();
      weight_optimizer_->zero_grad();
    } else {
      alpha_.mutable_grad() = plain_gradient(torch::autograd::grad({loss}, {alpha_})[0]);
    }
    arch_optimizer_->step();
    return r;
  }

  StepResult weight_step(int, int64_t step, at::Generator& generator) override {
    const BpttWindow& w = windows_[step];
    at::Tensor loss = forward(weight_stream_, w, weight_hidden_, generator, false,
                              dense() ? ExecMode::kDense : ExecMode::kSelected);
    StepResult r = summarise(loss, w, weight_stream_);
    weight_optimizer_->zero_grad();
    loss.backward();
    step_weights(w);
    return r;
  }

  StepResult joint_step(int, int64_t step, at::Generator& generator) override {
    const BpttWindow& w = windows_[step];
    at::Tensor loss = forward(weight_stream_, w, weight_hidden_, generator, true,
                              dense() ? ExecMode::kDense : ExecMode::kArchitecture);
    StepResult r = summarise(loss, w, weight_stream_);
    weight_optimizer_->zero_grad();
    arch_optimizer_->zero_grad();
    loss.backward();
    step_weights(w);
    arch_optimizer_->step();
    return r;
  }

  std::string progress_metrics(const EpochTotals& totals) const override {
    char text[64];
    std::snprintf(text, sizeof text, "loss %.3f ppl %.1f", totals.train_loss / totals.steps,
                  std::exp(totals.train_loss / totals.steps));
    return text;
  }

  EpochReport end_epoch(int epoch, const EpochTotals& totals) override {
    at::Tensor probs;
    {
      at::NoGradGuard no_grad;
      probs = sampler_->probabilities(alpha_);
    }
    EpochReport report;
    report.genotype.space = "darts-rnn";
    report.genotype.recurrent = sampler_->derive(probs);
    for (int i = 1; i <= sampler_->space().nodes; ++i) report.genotype.concat.push_back(i);
    at::Generator generator =
        at::detail::createCPUGenerator(options_.seed * 1000003ULL + epoch * 7919ULL + 17);
    const at::Tensor alpha = alpha_.detach();
    auto sampled = [&]() {
      at::NoGradGuard no_grad;
      return sampler_->sample(alpha, generator);
    };
    const CellWeights derived = sampler_->fixed(report.genotype.recurrent);
    auto fixed = [&]() { return derived; };
    const int64_t bptt = options_.lm.bptt;
    const double search_ppl = evaluate_perplexity(model_, valid_stream_, bptt, sampled, device_);
    const double derived_ppl = evaluate_perplexity(model_, valid_stream_, bptt, fixed, device_);
    const double test_ppl = evaluate_perplexity(model_, test_stream_, bptt, fixed, device_);
    const double train_loss = totals.train_loss / totals.steps;
    report.fields = {{"train_ppl", std::exp(train_loss)},
                     {"search_ppl", search_ppl},
                     {"derived_ppl", derived_ppl},
                     {"val_ppl", derived_ppl},
                     {"test_ppl", test_ppl},
                     {"gap", derived_ppl - search_ppl},
                     {"entropy", mean_group_entropy(probs, *sampler_)}};
    if (totals.val_seen) {
      report.fields["val_loss"] = totals.val_loss / totals.steps;
      report.fields["arch_ppl"] = std::exp(totals.val_loss / totals.steps);
    }
    char summary[160];
    std::snprintf(summary, sizeof summary,
                  "train ppl %.1f | valid ppl: search %.1f, derived %.1f | test ppl %.1f",
                  std::exp(train_loss), search_ppl, derived_ppl, test_ppl);
    report.summary = summary;
    return report;
  }

  json alphas_json() const override {
    at::NoGradGuard no_grad;
    return {{"format", "datanas-alphas/1"},
            {"space", "darts-rnn"},
            {"granularity", granularity_name(sampler_->options().granularity)},
            {"parametrisation", parametrisation_name(sampler_->options().parametrisation)},
            {"recurrent",
             {{"alpha", tensor_to_json(alpha_)},
              {"probs", tensor_to_json(sampler_->probabilities(alpha_))}}}};
  }

  void save_checkpoint(const std::string& path, int epochs_done) const override {
    torch::serialize::OutputArchive archive, model, weight_opt, arch_opt;
    model_->save(model);
    weight_optimizer_->save(weight_opt);
    arch_optimizer_->save(arch_opt);
    archive.write("model", model);
    archive.write("weight_optimizer", weight_opt);
    archive.write("arch_optimizer", arch_opt);
    archive.write("alpha", alpha_.detach());
    archive.write("epochs_done", at::tensor(int64_t{epochs_done}));
    write_file_atomic_with(path, [&](const std::string& temp) { archive.save_to(temp); });
  }

  int load_checkpoint(const std::string& path) override {
    if (!file_exists(path)) throw Error(path + ": no checkpoint to resume from");
    check_zip_file(path);  // as load_search_checkpoint: corrupt files stop before LibTorch
    try {
      torch::serialize::InputArchive archive, model, weight_opt, arch_opt;
      archive.load_from(path);
      archive.read("model", model);
      archive.read("weight_optimizer", weight_opt);
      archive.read("arch_optimizer", arch_opt);
      model_->load(model);
      weight_optimizer_->load(weight_opt);
      arch_optimizer_->load(arch_opt);
      at::Tensor alpha, epochs_done;
      archive.read("alpha", alpha);
      archive.read("epochs_done", epochs_done);
      if (!alpha.sizes().equals(alpha_.sizes()))
        throw Error(path + ": alpha shape does not match this configuration");
      const int done = checked_epochs_done(epochs_done, path);
      at::NoGradGuard no_grad;
      alpha_.copy_(alpha);
      return done;
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      throw Error(path +
                  ": not a datanas language-model search checkpoint of this configuration (" +
                  what.substr(0, what.find('\n')) + ")");
    }
  }

 private:
  bool dense() const { return options_.exec == "dense"; }

  // Loss of one window with a freshly drawn architecture; with `arch_grad` the weights carry
  // gradients to alpha and the loss includes the ADC term.
  at::Tensor forward(const at::Tensor& stream, const BpttWindow& w, LmHidden& hidden,
                     at::Generator& generator, bool arch_grad, ExecMode mode) {
    at::Tensor alpha = arch_grad ? alpha_ : alpha_.detach();
    CellWeights weights = sampler_->sample(alpha, generator);
    LmBatch batch = lm_batch(stream, w.start, w.length);
    hidden = hidden.detached();
    at::Tensor logits = model_->forward(batch.input.to(device_), hidden, &weights, mode);
    at::Tensor loss = at::cross_entropy_loss(logits, batch.target.to(device_));
    if (arch_grad && options_.adc_lambda > 0)
      loss = loss + options_.adc_lambda * adc_term(sampler_->probabilities(alpha), weights.weights);
    return loss;
  }

  StepResult summarise(const at::Tensor& loss, const BpttWindow& w, const at::Tensor& stream) {
    StepResult r;
    r.loss = loss.item<double>();
    check_finite_loss(r.loss);
    r.seen = w.length * stream.size(1);
    return r;
  }

  // SGD with the learning rate scaled by the window length (DARTS), gradient norm clipped.
  void step_weights(const BpttWindow& w) {
    set_learning_rate(*weight_optimizer_, lr_ * w.length / options_.lm.bptt);
    torch::nn::utils::clip_grad_norm_(model_->parameters(), options_.grad_clip);
    weight_optimizer_->step();
  }

  SearchOptions& options_;
  at::Device device_;
  at::Tensor weight_stream_, arch_stream_, valid_stream_, test_stream_;
  std::unique_ptr<Sampler> sampler_;
  RnnModel model_{nullptr};
  at::Tensor alpha_;
  std::unique_ptr<torch::optim::SGD> weight_optimizer_;
  std::unique_ptr<torch::optim::Adam> arch_optimizer_;
  std::vector<BpttWindow> windows_, arch_windows_;
  LmHidden weight_hidden_, arch_hidden_;
  double lr_ = 0;
};

}  // namespace

std::unique_ptr<SearchTask> make_lm_search_task(SearchOptions& options, const at::Device& device) {
  return std::make_unique<LmSearchTask>(options, device);
}

}  // namespace datanas
