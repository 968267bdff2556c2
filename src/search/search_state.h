// Everything a search carries from epoch to epoch: supernet weights, the two alpha tables and
// both optimisers. Saved as one checkpoint file after every epoch (atomically) for --resume.
#pragma once
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <memory>
#include <string>

#include "nets/supernet.h"
#include "sample/sampler.h"
#include "search/search_options.h"

namespace datanas {

struct SearchState {
  Supernet model{nullptr};
  at::Tensor alpha_normal, alpha_reduce;  // edges x ops, requires_grad
  std::unique_ptr<torch::optim::SGD> weight_optimizer;
  std::unique_ptr<torch::optim::Adam> arch_optimizer;
  int epochs_done = 0;
};

// Fresh state: weights initialised from the seed, alphas from the sampler's init rule.
SearchState make_search_state(const SearchOptions& options, const Sampler& sampler,
                              const at::Device& device);

void save_search_checkpoint(const std::string& path, const SearchState& state);
// Loads into a state made by make_search_state with the same options; throws Error naming
// the file when it is missing, truncated or from another configuration.
void load_search_checkpoint(const std::string& path, SearchState& state);

// The epochs_done entry of a checkpoint as a count; throws Error naming `path` when it is not
// one integer in range.
int checked_epochs_done(const at::Tensor& epochs_done, const std::string& path);

}  // namespace datanas
