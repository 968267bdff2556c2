#include "search/search_steps.h"

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/nn/functional/loss.h>

#include <cmath>

#include "kernels/sgd_step.h"
#include "sample/adc.h"
#include "util/error.h"
#include "util/finite.h"
#include "util/test_hooks.h"

namespace datanas {
namespace {

struct Forward {
  at::Tensor loss, logits;
};

// Forward pass with freshly drawn architectures. With `arch_grad` the weights carry gradients
// back to alpha and the loss includes the ADC term.
Forward sampled_forward(StepContext& c, const Batch& batch, at::Generator& generator,
                        bool arch_grad, ExecMode mode) {
  SearchState& s = c.state;
  at::Tensor alpha_normal = arch_grad ? s.alpha_normal : s.alpha_normal.detach();
  at::Tensor alpha_reduce = arch_grad ? s.alpha_reduce : s.alpha_reduce.detach();
  CellWeights normal = c.sampler.sample(alpha_normal, generator);
  CellWeights reduce = c.sampler.sample(alpha_reduce, generator);
  Forward f;
  f.logits = s.model->forward(batch.images.to(c.device), normal, reduce, mode);
  f.loss = at::cross_entropy_loss(f.logits, batch.labels.to(c.device));
  if (arch_grad && c.options.adc_lambda > 0) {
    f.loss = f.loss + c.options.adc_lambda *
                          (adc_term(c.sampler.probabilities(alpha_normal), normal.weights) +
                           adc_term(c.sampler.probabilities(alpha_reduce), reduce.weights));
  }
  if (c.poison_gradients) poison_gradients_of(f.loss);
  return f;
}

StepResult summarise(const Forward& f, const Batch& batch, const at::Device& device) {
  StepResult r;
  r.loss = f.loss.item<double>();
  check_finite_loss(r.loss);
  r.correct = f.logits.argmax(1).eq(batch.labels.to(device)).sum().item<int64_t>();
  r.seen = batch.labels.size(0);
  return r;
}

// Gradients are checked before any optimiser step, so a NaN or Inf never reaches the weights,
// the alphas or the optimisers' moments.
void clip_weight_gradients(StepContext& c) {
  check_finite_norm(
      clip_grad_norm(c.state.model->parameters(), c.options.grad_clip, c.options.net.kernels),
      "weight gradient norm");
}

void step_weights(StepContext& c) { sgd_step(*c.state.weight_optimizer, c.options.net.kernels); }

void check_alpha_gradients(StepContext& c) {
  check_finite_gradients({c.state.alpha_normal, c.state.alpha_reduce}, "alpha gradient");
}

}  // namespace

at::Tensor plain_gradient(const at::Tensor& gradient) {
  return gradient.is_view() ? gradient.clone() : gradient;
}

StepResult architecture_step(StepContext& c, const Batch& batch, at::Generator& generator) {
  SearchState& s = c.state;
  Forward f = sampled_forward(c, batch, generator, true,
                              c.dense() ? ExecMode::kDense : ExecMode::kArchitecture);
  StepResult r = summarise(f, batch, c.device);
  s.arch_optimizer->zero_grad();
  if (c.dense()) {
    // The authors' behaviour: a full backward that also computes weight gradients, discarded.
    s.weight_optimizer->zero_grad();
    f.loss.backward();
    s.weight_optimizer->zero_grad();
  } else {
    // Only the alpha gradients: autograd skips every weight-gradient computation.
    auto grads = torch::autograd::grad({f.loss}, {s.alpha_normal, s.alpha_reduce});
    s.alpha_normal.mutable_grad() = plain_gradient(grads[0]);
    s.alpha_reduce.mutable_grad() = plain_gradient(grads[1]);
  }
  check_alpha_gradients(c);
  s.arch_optimizer->step();
  return r;
}

StepResult weight_step(StepContext& c, const Batch& batch, at::Generator& generator) {
  Forward f = sampled_forward(c, batch, generator, false,
                              c.dense() ? ExecMode::kDense : ExecMode::kSelected);
  StepResult r = summarise(f, batch, c.device);
  c.state.weight_optimizer->zero_grad();
  f.loss.backward();
  clip_weight_gradients(c);
  step_weights(c);
  return r;
}

StepResult joint_step(StepContext& c, const Batch& batch, at::Generator& generator) {
  SearchState& s = c.state;
  Forward f = sampled_forward(c, batch, generator, true,
                              c.dense() ? ExecMode::kDense : ExecMode::kArchitecture);
  StepResult r = summarise(f, batch, c.device);
  s.weight_optimizer->zero_grad();
  s.arch_optimizer->zero_grad();
  f.loss.backward();
  clip_weight_gradients(c);
  check_alpha_gradients(c);
  step_weights(c);
  s.arch_optimizer->step();
  return r;
}

}  // namespace datanas
