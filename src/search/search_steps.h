// One optimisation step of each kind, on one batch. Each step draws its own architecture.
#pragma once
#include <ATen/core/Generator.h>

#include "data/loader.h"
#include "sample/sampler.h"
#include "search/search_options.h"
#include "search/search_state.h"

namespace datanas {

struct StepResult {
  double loss = 0;
  int64_t correct = 0, seen = 0;
};

struct StepContext {
  const SearchOptions& options;
  const Sampler& sampler;
  SearchState& state;
  at::Device device;
  bool poison_gradients = false;  // test hook: DATANAS_TEST_FAULT=grad@E:S
  bool dense() const { return options.exec == "dense"; }
};

// A gradient from autograd::grad, fit to be a parameter's .grad: autograd may hand back a view
// (when a single path reaches the input), which the optimiser's zero_grad cannot detach in place.
at::Tensor plain_gradient(const at::Tensor& gradient);

// Adam step of the alphas on a validation batch: cross-entropy plus the ADC term.
StepResult architecture_step(StepContext& context, const Batch& batch, at::Generator& generator);
// SGD step of the supernet weights on a training batch (alphas fixed).
StepResult weight_step(StepContext& context, const Batch& batch, at::Generator& generator);
// Single-level: weights and alphas updated from one forward and one backward pass.
StepResult joint_step(StepContext& context, const Batch& batch, at::Generator& generator);

}  // namespace datanas
