#include "train/trainer.h"

#include <ATen/ATen.h>
#include <torch/optim/sgd.h>
#include <torch/serialize.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "data/datasets.h"
#include "kernels/cpu_capability.h"
#include "kernels/sgd_step.h"
#include "search/run_files.h"
#include "train/model_file.h"
#include "train/train_memory.h"
#include "util/error.h"
#include "util/files.h"
#include "util/finite.h"
#include "util/progress.h"
#include "util/runtime.h"
#include "util/schedule.h"
#include "util/test_hooks.h"
#include "util/zip_check.h"

namespace datanas {
using nlohmann::json;

Evaluation evaluate_network(Network& network, const ImageLoader& loader, const at::Device& device) {
  at::NoGradGuard no_grad;
  network->eval();
  Evaluation result;
  double loss_sum = 0;
  int64_t top1 = 0, top5 = 0;
  for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
    Batch batch = loader.batch(0, b);
    at::Tensor labels = batch.labels.to(device);
    at::Tensor logits = network->forward(batch.images.to(device)).logits;
    loss_sum += at::cross_entropy_loss(logits, labels).item<double>() * labels.size(0);
    const int64_t k = std::min<int64_t>(5, logits.size(1));
    at::Tensor best = std::get<1>(logits.topk(k, 1));
    at::Tensor hits = best.eq(labels.unsqueeze(1));
    top1 += hits.select(1, 0).sum().item<int64_t>();
    top5 += hits.any(1).sum().item<int64_t>();
    result.seen += labels.size(0);
  }
  if (result.seen) {
    result.loss = loss_sum / result.seen;
    result.top1 = static_cast<double>(top1) / result.seen;
    result.top5 = static_cast<double>(top5) / result.seen;
  }
  return result;
}

namespace {

struct TrainState {
  Network network{nullptr};
  std::unique_ptr<torch::optim::SGD> optimizer;
  int epochs_done = 0;
};

void save_checkpoint(const std::string& path, const TrainState& state) {
  torch::serialize::OutputArchive archive, weights, optimizer;
  state.network->save(weights);
  state.optimizer->save(optimizer);
  archive.write("weights", weights);
  archive.write("optimizer", optimizer);
  archive.write("epochs_done", at::tensor(int64_t{state.epochs_done}));
  write_file_atomic_with(path, [&](const std::string& temp) { archive.save_to(temp); });
}

void load_checkpoint(const std::string& path, TrainState& state) {
  if (!file_exists(path)) throw Error(path + ": no checkpoint to resume from");
  check_zip_file(path);
  try {
    torch::serialize::InputArchive archive, weights, optimizer;
    archive.load_from(path);
    archive.read("weights", weights);
    archive.read("optimizer", optimizer);
    state.network->load(weights);
    state.optimizer->load(optimizer);
    at::Tensor epochs_done;
    archive.read("epochs_done", epochs_done);
    if (epochs_done.numel() != 1 || epochs_done.is_floating_point())
      throw Error(path + ": epochs_done is not an integer");
    const int64_t done = epochs_done.item<int64_t>();
    if (done < 0 || done > 1000000)
      throw Error(path + ": epochs_done " + std::to_string(done) + " is out of range");
    state.epochs_done = static_cast<int>(done);
  } catch (const c10::Error& e) {
    throw Error(path + ": not a training checkpoint of this configuration");
  }
}

}  // namespace

TrainResult run_training(const TrainOptions& requested, bool resume) {
  TrainOptions options = requested;
  validate_train_options(options);
  const NonFinitePolicy nonfinite = parse_nonfinite_policy(options.on_nonfinite);
  const DatasetInfo& info = dataset_info(options.dataset);
  const at::Device device = parse_device(options.device);
  const int threads = configure_threads(options.threads);
  const Genotype genotype = load_genotype(options.genotype);
  if (genotype.is_recurrent())
    throw Error("--genotype " + options.genotype +
                ": a recurrent (darts-rnn) cell; train it with --task lm");
  const RunFolder folder = open_run_folder(options.out);
  const std::string& checkpoint_path = folder.checkpoint;
  const std::string& log_path = folder.log;
  json config = train_options_to_json(options);
  config["resolved_threads"] = threads;
  // The native kernels' instruction set: their numbers differ in rounding from one to another.
  config["cpu_capability"] = kernels::cpu_capability_name(kernels::kernel_capability());
  config["genotype_resolved"] = json::parse(genotype_to_json(genotype));
  write_json_file(folder.config, config);

  const uint64_t data_bytes = check_train_data_memory(options);
  // An empty data_dir makes load_dataset use the data set's default folder.
  ImageSet train_images = load_dataset(options.dataset, options.data_dir, true, options.limit);
  ImageSet test_images = load_dataset(options.dataset, options.data_dir, false, options.test_limit);
  LoaderOptions train_loading;
  train_loading.batch_size = options.batch_size;
  train_loading.augment = info.augment_crop_flip;
  train_loading.cutout = options.cutout;
  train_loading.seed = options.seed;
  auto all = [](int64_t n) { return split_indices(n, 1.0).first; };
  ImageLoader train_loader(train_images, all(train_images.count), info, train_loading);
  LoaderOptions test_loading;
  test_loading.batch_size = options.batch_size;
  test_loading.shuffle = false;
  ImageLoader test_loader(test_images, all(test_images.count), info, test_loading);

  NetworkOptions net;
  net.kind = options.network;
  net.input_channels = info.channels;
  net.init_channels = options.init_channels;
  net.layers = options.layers;
  net.classes = info.classes;
  net.auxiliary = options.auxiliary_weight > 0;
  net.kernels = parse_kernel_backend(options.kernels);
  net.channels_last = channels_last_for(options.memory_format);
  torch::manual_seed(options.seed);
  TrainState state;
  state.network = Network(genotype, net);
  state.network->to(device);
  state.optimizer = std::make_unique<torch::optim::SGD>(state.network->parameters(),
                                                        torch::optim::SGDOptions(options.lr)
                                                            .momentum(options.momentum)
                                                            .weight_decay(options.weight_decay));
  int64_t parameter_count = 0;
  for (const auto& p : state.network->parameters()) parameter_count += p.numel();
  check_train_step_memory(options, genotype, parameter_count, data_bytes);
  std::vector<json> log;
  if (resume && !file_exists(checkpoint_path)) {
    // Killed before its first checkpoint: nothing to restore, the run starts over.
    std::fprintf(stderr, "resuming: no checkpoint yet, starting from epoch 1\n");
  } else if (resume) {
    load_checkpoint(checkpoint_path, state);
    log = read_log_lines(log_path);
    log.resize(std::min<size_t>(log.size(), state.epochs_done));
    std::fprintf(stderr, "resuming after epoch %d of %d\n", state.epochs_done, options.epochs);
  }
  const int64_t params = count_parameters_without_auxiliary(*state.network);
  std::fprintf(stderr, "datanas train: %s, %lld parameters, %lld training / %lld test images\n",
               options.genotype.c_str(), static_cast<long long>(params),
               static_cast<long long>(train_images.count),
               static_cast<long long>(test_images.count));

  const int64_t steps = train_loader.batches_per_epoch();
  for (int epoch = state.epochs_done; epoch < options.epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const double lr = cosine_annealing(options.lr, 0.0, epoch, options.epochs);
    set_learning_rate(*state.optimizer, lr);
    const double drop_path = options.drop_path * epoch / options.epochs;
    state.network->set_drop_path(drop_path);
    // Drop-path masks come from the global generator: reseed per epoch so a resumed run
    // draws the same masks as an uninterrupted one.
    torch::manual_seed(options.seed * 1000003ULL + epoch);
    state.network->train();
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, skipped = 0;
    const InjectedFault& fault = injected_fault();
    Progress progress("train " + std::to_string(epoch + 1) + "/" + std::to_string(options.epochs),
                      steps);
    for (int64_t step = 0; step < steps; ++step) {
      Batch batch = train_loader.batch(epoch, step);
      if (fault.hits("loss", epoch, step)) batch.images = poisoned_images(batch.images);
      std::optional<BufferSnapshot> buffers;
      if (nonfinite == NonFinitePolicy::kSkip) buffers.emplace(*state.network);
      at::Tensor labels = batch.labels.to(device);
      NetworkOutput out = state.network->forward(batch.images.to(device));
      at::Tensor loss = at::cross_entropy_loss(out.logits, labels);
      if (out.aux_logits.defined())
        loss = loss + options.auxiliary_weight * at::cross_entropy_loss(out.aux_logits, labels);
      if (fault.hits("grad", epoch, step)) poison_gradients_of(loss);
      const double loss_value = loss.item<double>();
      // Loss and gradients are checked before the optimiser step uses them.
      try {
        check_finite_loss(loss_value);
        state.optimizer->zero_grad();
        loss.backward();
        check_finite_norm(
            clip_grad_norm(state.network->parameters(), options.grad_clip, net.kernels),
            "weight gradient norm");
      } catch (const NonFiniteError& e) {
        const std::string where =
            "epoch " + std::to_string(epoch + 1) + " step " + std::to_string(step + 1);
        if (nonfinite == NonFinitePolicy::kStop)
          throw Error(where + ": " + e.what() + last_good_checkpoint(checkpoint_path) +
                      " (--on-nonfinite skip drops such batches)");
        buffers->restore();
        ++skipped;
        std::fprintf(stderr, "\nwarning: %s: %s; batch skipped (--on-nonfinite skip)\n",
                     where.c_str(), e.what());
        continue;
      }
      sgd_step(*state.optimizer, net.kernels);
      loss_sum += loss_value * labels.size(0);
      correct += out.logits.argmax(1).eq(labels).sum().item<int64_t>();
      seen += labels.size(0);
      char metrics[64];
      std::snprintf(metrics, sizeof metrics, "loss %.3f acc %.1f%%", loss_sum / seen,
                    100.0 * correct / seen);
      progress.update(step + 1, metrics);
    }
    if (seen == 0)
      throw Error("epoch " + std::to_string(epoch + 1) + ": every batch was skipped" +
                  last_good_checkpoint(checkpoint_path));
    // Never a non-finite value over a good checkpoint, whatever slipped past the step checks.
    const std::string bad = first_nonfinite_tensor(*state.network);
    if (!bad.empty())
      throw Error("epoch " + std::to_string(epoch + 1) + ": " + bad +
                  " is not finite, no output written" + last_good_checkpoint(checkpoint_path));
    Evaluation test = evaluate_network(state.network, test_loader, device);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    char summary[128];
    std::snprintf(summary, sizeof summary, "train acc %.1f%% | test acc %.2f%% top-5 %.2f%%",
                  100.0 * correct / seen, 100 * test.top1, 100 * test.top5);
    progress.finish(summary);
    json record = {{"epoch", epoch + 1},
                   {"lr", lr},
                   {"drop_path", drop_path},
                   {"train_loss", loss_sum / seen},
                   {"train_acc", static_cast<double>(correct) / seen},
                   {"test_loss", test.loss},
                   {"test_acc", test.top1},
                   {"test_top5", test.top5},
                   {"seconds", seconds}};
    if (skipped) record["skipped_steps"] = skipped;
    log.push_back(record);
    write_log_lines(log_path, log);
    state.epochs_done = epoch + 1;
    save_checkpoint(checkpoint_path, state);
  }
  TrainResult result;
  result.model_path = run_file(options.out, "model.pt");
  result.params = params;
  save_model_file(result.model_path, {genotype, net, options.dataset, state.network});
  if (log.empty()) throw Error(log_path + ": no epoch recorded");
  result.last_epoch = log.back();
  return result;
}

}  // namespace datanas
