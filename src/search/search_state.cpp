#include "search/search_state.h"

#include <ATen/ATen.h>
#include <torch/serialize.h>

#include "util/error.h"
#include "util/files.h"
#include "util/zip_check.h"

namespace datanas {

SearchState make_search_state(const SearchOptions& options, const Sampler& sampler,
                              const at::Device& device) {
  SearchState state;
  torch::manual_seed(options.seed);
  state.model = Supernet(options.net);
  state.model->to(device);
  at::Generator generator = at::detail::createCPUGenerator(options.seed ^ 0xa1fa5eedULL);
  state.alpha_normal = sampler.initial_alpha(generator).to(device).set_requires_grad(true);
  state.alpha_reduce = sampler.initial_alpha(generator).to(device).set_requires_grad(true);
  // Every weight starts with a defined zero gradient. zero_grad() keeps gradients defined, so
  // ops that a sampled architecture skips still get weight decay and momentum each step, as in
  // the dense supernet and the authors' code, and a resumed run (whose gradients would
  // otherwise be undefined until first selected) behaves exactly like an uninterrupted one.
  for (auto& p : state.model->parameters()) p.mutable_grad() = at::zeros_like(p);
  state.weight_optimizer = std::make_unique<torch::optim::SGD>(
      state.model->parameters(), torch::optim::SGDOptions(options.lr)
                                     .momentum(options.momentum)
                                     .weight_decay(options.weight_decay));
  state.arch_optimizer = std::make_unique<torch::optim::Adam>(
      std::vector<at::Tensor>{state.alpha_normal, state.alpha_reduce},
      torch::optim::AdamOptions(options.arch_lr)
          .betas({options.arch_beta1, options.arch_beta2})
          .weight_decay(options.arch_weight_decay));
  return state;
}

void save_search_checkpoint(const std::string& path, const SearchState& state) {
  torch::serialize::OutputArchive archive, model, weight_opt, arch_opt;
  state.model->save(model);
  state.weight_optimizer->save(weight_opt);
  state.arch_optimizer->save(arch_opt);
  archive.write("model", model);
  archive.write("weight_optimizer", weight_opt);
  archive.write("arch_optimizer", arch_opt);
  archive.write("alpha_normal", state.alpha_normal.detach());
  archive.write("alpha_reduce", state.alpha_reduce.detach());
  archive.write("epochs_done", at::tensor(int64_t{state.epochs_done}));
  write_file_atomic_with(path, [&](const std::string& temp) { archive.save_to(temp); });
}

int checked_epochs_done(const at::Tensor& epochs_done, const std::string& path) {
  if (epochs_done.numel() != 1 || epochs_done.is_floating_point())
    throw Error(path + ": epochs_done is not an integer");
  const int64_t done = epochs_done.item<int64_t>();
  if (done < 0 || done > 1000000)
    throw Error(path + ": epochs_done " + std::to_string(done) + " is out of range");
  return static_cast<int>(done);
}

void load_search_checkpoint(const std::string& path, SearchState& state) {
  if (!file_exists(path)) throw Error(path + ": no checkpoint to resume from");
  // Truncated or corrupted files stop here, before LibTorch's parser sees them.
  check_zip_file(path);
  try {
    torch::serialize::InputArchive archive, model, weight_opt, arch_opt;
    archive.load_from(path);
    archive.read("model", model);
    archive.read("weight_optimizer", weight_opt);
    archive.read("arch_optimizer", arch_opt);
    state.model->load(model);
    state.weight_optimizer->load(weight_opt);
    state.arch_optimizer->load(arch_opt);
    at::Tensor alpha_normal, alpha_reduce, epochs_done;
    archive.read("alpha_normal", alpha_normal);
    archive.read("alpha_reduce", alpha_reduce);
    archive.read("epochs_done", epochs_done);
    for (const at::Tensor* alpha : {&alpha_normal, &alpha_reduce}) {
      if (!alpha->sizes().equals(state.alpha_normal.sizes()) || !alpha->is_floating_point())
        throw Error(path + ": alpha shape does not match this configuration");
    }
    const int done = checked_epochs_done(epochs_done, path);
    at::NoGradGuard no_grad;
    state.alpha_normal.copy_(alpha_normal);
    state.alpha_reduce.copy_(alpha_reduce);
    state.epochs_done = done;
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw Error(path + ": not a datanas search checkpoint of this configuration (" +
                what.substr(0, what.find('\n')) + ")");
  }
}

}  // namespace datanas
