#include "search/searcher.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "data/datasets.h"
#include "data/loader.h"
#include "search/gap.h"
#include "search/run_files.h"
#include "search/search_memory.h"
#include "search/search_state.h"
#include "search/search_steps.h"
#include "util/error.h"
#include "util/files.h"
#include "util/finite.h"
#include "util/progress.h"
#include "util/runtime.h"
#include "util/schedule.h"
#include "util/test_hooks.h"

namespace datanas {
using nlohmann::json;

double mean_group_entropy(const at::Tensor& probs, const Sampler& sampler) {
  at::Tensor flat = probs.detach().to(at::kCPU).to(at::kDouble).reshape({-1});
  double total = 0.0;
  for (const auto& g : sampler.groups()) {
    at::Tensor p = flat.slice(0, g.start, g.start + g.size).clamp_min(0);
    p = p / p.sum().clamp_min(1e-12);
    total += -(p * (p + 1e-12).log()).sum().item<double>();
  }
  return total / sampler.groups().size();
}

namespace {

// Independent, reproducible random streams per (seed, epoch, purpose).
at::Generator stream(uint64_t seed, int epoch, uint64_t purpose) {
  return at::detail::createCPUGenerator(seed * 0x9E3779B97F4A7C15ULL + epoch * 1315423911ULL +
                                        purpose);
}

json alphas_json(const SearchState& state, const Sampler& sampler) {
  at::NoGradGuard no_grad;
  json out = {{"format", "datanas-alphas/1"},
              {"granularity", granularity_name(sampler.options().granularity)},
              {"parametrisation", parametrisation_name(sampler.options().parametrisation)}};
  for (auto [name, alpha] : {std::make_pair("normal", state.alpha_normal),
                             std::make_pair("reduce", state.alpha_reduce)}) {
    out[name] = {{"alpha", tensor_to_json(alpha)},
                 {"probs", tensor_to_json(sampler.probabilities(alpha))}};
  }
  return out;
}

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

std::string percent(int64_t correct, int64_t seen) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f%%", seen ? 100.0 * correct / seen : 0.0);
  return text;
}

}  // namespace

SearchResult run_search(const SearchOptions& requested, bool resume) {
  SearchOptions options = requested;
  const DatasetInfo& info = dataset_info(options.dataset);
  options.net.input_channels = info.channels;
  options.net.classes = info.classes;
  validate_search_options(options);
  const NonFinitePolicy nonfinite = parse_nonfinite_policy(options.on_nonfinite);
  const at::Device device = parse_device(options.device);
  const int threads = configure_threads(options.threads);
  const RunFolder folder = open_run_folder(options.out);
  const std::string& checkpoint_path = folder.checkpoint;
  const std::string& log_path = folder.log;
  json config = search_options_to_json(options);
  config["resolved_threads"] = threads;
  write_json_file(folder.config, config);

  const std::string data_dir = options.data_dir.empty() ? info.default_dir : options.data_dir;
  std::fprintf(stderr, "datanas search: %s from %s, limit %lld, sampler %s (M=%d, %s), seed %llu\n",
               options.dataset.c_str(), data_dir.c_str(), static_cast<long long>(options.limit),
               options.sampler.name.c_str(), options.sampler.M,
               granularity_name(options.sampler.granularity).c_str(),
               static_cast<unsigned long long>(options.seed));
  const uint64_t data_bytes = check_search_data_memory(options, data_dir);
  ImageSet images = load_dataset(options.dataset, data_dir, /*train=*/true, options.limit);
  auto [train_indices, val_indices] = split_indices(images.count, options.train_portion);
  if (train_indices.empty() || val_indices.empty())
    throw Error("--limit/--train-portion: both the training and validation halves need images");
  LoaderOptions loader_options;
  loader_options.batch_size = options.batch_size;
  loader_options.augment = info.augment_crop_flip;
  loader_options.seed = options.seed;
  ImageLoader train_loader(images, train_indices, info, loader_options);
  loader_options.seed = options.seed + 1;
  ImageLoader val_loader(images, val_indices, info, loader_options);

  auto sampler = make_sampler(options.sampler, CellSpace{options.net.nodes, 8});
  SearchState state = make_search_state(options, *sampler, device);
  int64_t parameters = 0;
  for (const auto& p : state.model->parameters()) parameters += p.numel();
  check_search_step_memory(options, parameters, data_bytes);
  std::vector<json> log;
  if (resume && !file_exists(checkpoint_path)) {
    // Killed before its first checkpoint: nothing to restore, the run starts over.
    std::fprintf(stderr, "resuming: no checkpoint yet, starting from epoch 1\n");
  } else if (resume) {
    load_search_checkpoint(checkpoint_path, state);
    log = read_log_lines(log_path);
    log.resize(std::min<size_t>(log.size(), state.epochs_done));
    std::fprintf(stderr, "resuming after epoch %d of %d\n", state.epochs_done, options.epochs);
  }
  StepContext context{options, *sampler, state, device};
  SearchResult result;
  const int64_t steps = train_loader.batches_per_epoch();
  for (int epoch = state.epochs_done; epoch < options.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    sampler->set_epoch(epoch, options.epochs);
    const double lr = cosine_annealing(options.lr, options.lr_min, epoch, options.epochs);
    set_learning_rate(*state.weight_optimizer, lr);
    at::Generator arch_noise = stream(options.seed, epoch, 1);
    at::Generator weight_noise = stream(options.seed, epoch, 2);
    state.model->train();
    EpochTotals totals;
    Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(options.epochs),
                      steps);
    const InjectedFault& fault = injected_fault();
    for (int64_t step = 0; step < steps; ++step) {
      context.poison_gradients = fault.hits("grad", epoch, step);
      std::optional<BufferSnapshot> buffers;
      if (nonfinite == NonFinitePolicy::kSkip) buffers.emplace(*state.model);
      const std::string where =
          "epoch " + std::to_string(epoch + 1) + " step " + std::to_string(step + 1);
      try {
        Batch train_batch = train_loader.batch(epoch, step);
        if (fault.hits("loss", epoch, step))
          train_batch.images = poisoned_images(train_batch.images);
        if (epoch < options.warmup_epochs) {
          totals.add_train(weight_step(context, train_batch, weight_noise));
        } else if (options.mode == "first-order") {
          Batch val_batch = val_loader.batch(epoch, step % val_loader.batches_per_epoch());
          if (fault.hits("loss", epoch, step)) val_batch.images = poisoned_images(val_batch.images);
          totals.add_val(architecture_step(context, val_batch, arch_noise));
          totals.add_train(weight_step(context, train_batch, weight_noise));
        } else {
          totals.add_train(joint_step(context, train_batch, weight_noise));
        }
      } catch (const NonFiniteError& e) {
        // Detected before any optimiser step used it; only BN statistics may have moved.
        if (nonfinite == NonFinitePolicy::kStop)
          throw Error(where + ": " + e.what() + last_good_checkpoint(checkpoint_path) +
                      " (--on-nonfinite skip drops such batches)");
        buffers->restore();
        ++totals.skipped;
        std::fprintf(stderr, "\nwarning: %s: %s; batch skipped (--on-nonfinite skip)\n",
                     where.c_str(), e.what());
        continue;
      } catch (const Error& e) {
        throw Error(where + ": " + e.what() + last_good_checkpoint(checkpoint_path));
      }
      ++totals.steps;
      progress.update(step + 1, "loss " + std::to_string(totals.train_loss / totals.steps).substr(0, 5) +
                                    " acc " + percent(totals.train_correct, totals.train_seen));
    }
    at::Tensor probs_normal, probs_reduce;
    {
      at::NoGradGuard no_grad;
      probs_normal = sampler->probabilities(state.alpha_normal);
      probs_reduce = sampler->probabilities(state.alpha_reduce);
    }
    Genotype genotype =
        derive_genotype(*sampler, probs_normal, probs_reduce, options.net.multiplier);
    GapOptions gap_options{options.gap_batches, options.bn_recalibration_batches, epoch,
                           options.seed};
    GapResult gap = measure_gap(state.model, *sampler, state.alpha_normal.detach(),
                                state.alpha_reduce.detach(), genotype, val_loader, train_loader,
                                gap_options, device);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    json record = {
        {"epoch", epoch + 1},
        {"warmup", epoch < options.warmup_epochs},
        {"lr", lr},
        {"temperature", sampler->temperature()},
        {"train_loss", totals.train_loss / std::max<int64_t>(1, totals.steps)},
        {"train_acc", totals.train_seen ? double(totals.train_correct) / totals.train_seen : 0.0},
        {"search_acc", gap.search_acc},
        {"derived_acc", gap.derived_acc},
        {"derived_acc_raw", gap.derived_acc_raw},
        {"gap", gap.gap()},
        {"entropy_normal", mean_group_entropy(probs_normal, *sampler)},
        {"entropy_reduce", mean_group_entropy(probs_reduce, *sampler)},
        {"seconds", seconds},
        {"genotype", json::parse(genotype_to_json(genotype))},
    };
    record["entropy"] = (record["entropy_normal"].get<double>() +
                         record["entropy_reduce"].get<double>()) / 2;
    if (totals.val_seen) {
      record["val_loss"] = totals.val_loss / std::max<int64_t>(1, totals.steps);
      record["val_acc"] = totals.val_seen ? double(totals.val_correct) / totals.val_seen : 0.0;
    }
    progress.finish("train acc " + percent(totals.train_correct, totals.train_seen) +
                    " | search acc " + percent(std::lround(gap.search_acc * 1000), 1000) +
                    " | derived acc " + percent(std::lround(gap.derived_acc * 1000), 1000) +
                    " (raw " + percent(std::lround(gap.derived_acc_raw * 1000), 1000) + ")");
    if (totals.skipped) record["skipped_steps"] = totals.skipped;
    // Never a non-finite value over a good checkpoint, whatever slipped past the step checks.
    std::string bad = first_nonfinite_tensor(*state.model);
    if (bad.empty() && !(at::isfinite(state.alpha_normal).all().item<bool>() &&
                         at::isfinite(state.alpha_reduce).all().item<bool>()))
      bad = "alpha";
    if (!bad.empty())
      throw Error("epoch " + std::to_string(epoch + 1) + ": " + bad +
                  " is not finite, no output written" + last_good_checkpoint(checkpoint_path));
    log.push_back(record);
    // Outputs first, checkpoint last: a run killed in between resumes at this epoch and
    // rewrites the same files.
    write_json_file(run_file(options.out, "alphas.json"), alphas_json(state, *sampler));
    write_genotype_files(options.out, genotype);
    write_log_lines(log_path, log);
    state.epochs_done = epoch + 1;
    save_search_checkpoint(checkpoint_path, state);
  }
  if (log.empty()) throw Error(log_path + ": no epoch recorded");
  result.last_epoch = log.back();
  result.genotype = genotype_from_json(log.back()["genotype"].dump(), log_path);
  return result;
}

}  // namespace datanas
