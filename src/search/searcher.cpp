#include "search/searcher.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "kernels/cpu_capability.h"
#include "search/run_files.h"
#include "tasks/search_task.h"
#include "util/error.h"
#include "util/files.h"
#include "util/finite.h"
#include "util/progress.h"
#include "util/runtime.h"
#include "util/schedule.h"

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

}  // namespace

SearchResult run_search(const SearchOptions& requested, bool resume) {
  SearchOptions options = requested;
  prepare_search_options(options);
  validate_search_options(options);
  const NonFinitePolicy nonfinite = parse_nonfinite_policy(options.on_nonfinite);
  const at::Device device = parse_device(options.device);
  const int threads = configure_threads(options.threads);
  const RunFolder folder = open_run_folder(options.out);
  const std::string& checkpoint_path = folder.checkpoint;
  const std::string& log_path = folder.log;
  json config = search_options_to_json(options);
  config["resolved_threads"] = threads;
  // The native kernels' instruction set: their numbers differ in rounding from one to another.
  config["cpu_capability"] = kernels::cpu_capability_name(kernels::kernel_capability());
  write_json_file(folder.config, config);

  std::unique_ptr<SearchTask> task = make_search_task(options, device);
  std::vector<json> log;
  int epochs_done = 0;
  if (resume && !file_exists(checkpoint_path)) {
    // Killed before its first checkpoint: nothing to restore, the run starts over.
    std::fprintf(stderr, "resuming: no checkpoint yet, starting from epoch 1\n");
  } else if (resume) {
    epochs_done = task->load_checkpoint(checkpoint_path);
    log = read_log_lines(log_path);
    log.resize(std::min<size_t>(log.size(), epochs_done));
    std::fprintf(stderr, "resuming after epoch %d of %d\n", epochs_done, options.epochs);
  }
  // The samplers are const to the tasks' steps; only the loop moves the temperature.
  Sampler& sampler = const_cast<Sampler&>(task->sampler());
  SearchResult result;
  for (int epoch = epochs_done; epoch < options.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    sampler.set_epoch(epoch, options.epochs);
    const double lr = cosine_annealing(options.lr, options.lr_min, epoch, options.epochs);
    task->begin_epoch(epoch, lr);
    const int64_t steps = task->steps_per_epoch();  // may vary (variable-length BPTT)
    at::Generator arch_noise = stream(options.seed, epoch, 1);
    at::Generator weight_noise = stream(options.seed, epoch, 2);
    EpochTotals totals;
    Progress progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(options.epochs),
                      steps);
    for (int64_t step = 0; step < steps; ++step) {
      std::optional<BufferSnapshot> buffers;
      if (nonfinite == NonFinitePolicy::kSkip) buffers.emplace(task->network());
      const std::string where =
          "epoch " + std::to_string(epoch + 1) + " step " + std::to_string(step + 1);
      try {
        if (epoch < options.warmup_epochs) {
          totals.add_train(task->weight_step(epoch, step, weight_noise));
        } else if (options.mode == "first-order") {
          totals.add_val(task->architecture_step(epoch, step, arch_noise));
          totals.add_train(task->weight_step(epoch, step, weight_noise));
        } else {
          totals.add_train(task->joint_step(epoch, step, weight_noise));
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
      progress.update(step + 1, task->progress_metrics(totals));
    }
    EpochReport report = task->end_epoch(epoch, totals);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    json record = report.fields;
    record["epoch"] = epoch + 1;
    record["warmup"] = epoch < options.warmup_epochs;
    record["lr"] = lr;
    record["temperature"] = sampler.temperature();
    record["train_loss"] = totals.train_loss / std::max<int64_t>(1, totals.steps);
    record["seconds"] = seconds;
    record["genotype"] = json::parse(genotype_to_json(report.genotype));
    if (totals.skipped) record["skipped_steps"] = totals.skipped;
    progress.finish(report.summary);
    // Never a non-finite value over a good checkpoint, whatever slipped past the step checks.
    const std::string bad = task->first_nonfinite_state();
    if (!bad.empty())
      throw Error("epoch " + std::to_string(epoch + 1) + ": " + bad +
                  " is not finite, no output written" + last_good_checkpoint(checkpoint_path));
    log.push_back(record);
    // Outputs first, checkpoint last: a run killed in between resumes at this epoch and
    // rewrites the same files.
    write_json_file(run_file(options.out, "alphas.json"), task->alphas_json());
    write_genotype_files(options.out, report.genotype);
    write_log_lines(log_path, log);
    task->save_checkpoint(checkpoint_path, epoch + 1);
  }
  if (log.empty()) throw Error(log_path + ": no epoch recorded");
  result.last_epoch = log.back();
  result.genotype = genotype_from_json(log.back()["genotype"].dump(), log_path);
  return result;
}

}  // namespace datanas
