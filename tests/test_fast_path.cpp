// The fast execution path computes exactly what the dense (authors') path computes: with
// identical Gumbel draws, the search steps of `--exec fast` and `--exec dense` give the same
// loss, the same alpha gradients and the same weight gradients, for edge and node granularity
// and M = 1, 4, 7. Checked through the real step functions, from identically built states.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "search/search_state.h"
#include "search/search_steps.h"

namespace datanas {
namespace {

SearchOptions tiny_options(const std::string& exec, int M, Granularity granularity) {
  SearchOptions o;
  o.net.input_channels = 1;
  o.net.init_channels = 4;
  o.net.layers = 3;
  o.sampler.M = M;
  o.sampler.granularity = granularity;
  o.exec = exec;
  o.seed = 21;
  return o;
}

Batch random_batch(uint64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(seed);
  return {at::normal(0.0, 1.0, {6, 1, 28, 28}, g), at::randint(0, 10, {6}, g)};
}

// One search state plus what a step needs; built from the seed, so two are identical.
struct Stepper {
  SearchOptions options;
  std::unique_ptr<Sampler> sampler;
  SearchState state;
  Stepper(const SearchOptions& o)
      : options(o),
        sampler(make_sampler(o.sampler, CellSpace{o.net.nodes, 8})),
        state(make_search_state(o, *sampler, at::kCPU)) {
    sampler->set_epoch(0, o.epochs);
  }
  StepContext context() { return StepContext{options, *sampler, state, at::kCPU}; }
  at::Tensor alpha_grads() const {
    return at::cat(
        {state.alpha_normal.grad().reshape({-1}), state.alpha_reduce.grad().reshape({-1})});
  }
  at::Tensor weight_grads() const {
    std::vector<at::Tensor> flat;
    for (const auto& p : state.model->parameters())
      flat.push_back(p.grad().defined() ? p.grad().reshape({-1}) : at::zeros({p.numel()}));
    return at::cat(flat);
  }
};

at::Generator draws(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

// to's parameters and buffers (batch-norm statistics) become from's.
void copy_weights(const Stepper& from, Stepper& to) {
  at::NoGradGuard no_grad;
  const auto params = from.state.model->parameters(), their = to.state.model->parameters();
  for (size_t i = 0; i < params.size(); ++i) their[i].copy_(params[i]);
  const auto buffers = from.state.model->buffers(), their_buffers = to.state.model->buffers();
  for (size_t i = 0; i < buffers.size(); ++i) their_buffers[i].copy_(buffers[i]);
}

// max |a - b| <= rel * max |b| (a tiny absolute floor for all-zero references).
void expect_close(const at::Tensor& a, const at::Tensor& b, double rel, const std::string& what) {
  const double scale = b.abs().max().item<double>();
  const double diff = (a - b).abs().max().item<double>();
  EXPECT_LE(diff, rel * scale + 1e-12) << what << ": max diff " << diff << ", scale " << scale;
}

class FastPath : public ::testing::TestWithParam<std::tuple<Granularity, int>> {
 protected:
  std::string label() const {
    return granularity_name(std::get<0>(GetParam())) +
           " M=" + std::to_string(std::get<1>(GetParam()));
  }
  SearchOptions options(const std::string& exec) const {
    return tiny_options(exec, std::get<1>(GetParam()), std::get<0>(GetParam()));
  }
};

// Weight step, then architecture step (first-order alternation), dense against fast.
TEST_P(FastPath, AlternatingStepsMatchDense) {
  Stepper dense(options("dense")), fast(options("fast"));
  const Batch train = random_batch(1), val = random_batch(2);

  auto dense_context = dense.context(), fast_context = fast.context();
  at::Generator g_dense = draws(3), g_fast = draws(3);
  StepResult wd = weight_step(dense_context, train, g_dense);
  StepResult wf = weight_step(fast_context, train, g_fast);
  EXPECT_NEAR(wf.loss, wd.loss, 1e-5 * std::abs(wd.loss)) << label() << " weight-step loss";
  EXPECT_EQ(wf.correct, wd.correct) << label();
  const at::Tensor dense_weight_grads = dense.weight_grads();
  expect_close(fast.weight_grads(), dense_weight_grads, 1e-4, label() + " weight gradients");
  EXPECT_GT(dense_weight_grads.abs().max().item<double>(), 0.0) << label();

  for (Stepper* s : {&dense, &fast}) s->state.weight_optimizer->zero_grad();
  // The architecture step starts from the same weights: the weight steps' updates differ in
  // rounding, and this tiny network's alpha gradient jumps when a ReLU or max-pool input crosses
  // its kink (the dense path's own jumped when only the stem's batch-norm weight was scaled by
  // 1 + 1e-7; the sanitizer build's rounding once moved node M = 7 by 0.8 %).
  copy_weights(dense, fast);
  StepResult ad = architecture_step(dense_context, val, g_dense);
  StepResult af = architecture_step(fast_context, val, g_fast);
  EXPECT_NEAR(af.loss, ad.loss, 1e-5 * std::abs(ad.loss)) << label() << " arch-step loss";
  const at::Tensor dense_alpha_grads = dense.alpha_grads();
  expect_close(fast.alpha_grads(), dense_alpha_grads, 1e-4, label() + " alpha gradients");
  EXPECT_GT((dense_alpha_grads != 0).sum().item<int64_t>(), 0) << label();
  // The fast architecture step computes no weight gradient at all.
  EXPECT_EQ(fast.weight_grads().abs().max().item<double>(), 0.0) << label();
  // Same gradients, same Adam update.
  expect_close(fast.state.alpha_normal.detach(), dense.state.alpha_normal.detach(), 1e-5,
               label() + " updated alpha");
}

// Single-level joint step: one forward and one backward give both gradients.
TEST_P(FastPath, JointStepMatchesDense) {
  SearchOptions dense_options = options("dense"), fast_options = options("fast");
  dense_options.mode = fast_options.mode = "single-level";
  Stepper dense(dense_options), fast(fast_options);
  const Batch batch = random_batch(4);
  auto dense_context = dense.context(), fast_context = fast.context();
  at::Generator g_dense = draws(5), g_fast = draws(5);
  StepResult rd = joint_step(dense_context, batch, g_dense);
  StepResult rf = joint_step(fast_context, batch, g_fast);
  EXPECT_NEAR(rf.loss, rd.loss, 1e-5 * std::abs(rd.loss)) << label() << " joint loss";
  expect_close(fast.alpha_grads(), dense.alpha_grads(), 1e-4, label() + " alpha gradients");
  expect_close(fast.weight_grads(), dense.weight_grads(), 1e-4, label() + " weight gradients");
}

// The alpha gradients a step leaves are plain tensors, never views: the next step's zero_grad
// detaches them in place, which a view refuses. (autograd can hand back a view when a single
// path reaches alpha; with these draws it does within the first steps.)
TEST(FastPathSteps, ArchitectureStepsLeavePlainAlphaGradients) {
  SearchOptions o = tiny_options("fast", 1, Granularity::kNode);
  o.net.layers = 5;
  Stepper fast(o);
  auto context = fast.context();
  at::Generator g = draws(3);
  const Batch val = random_batch(2);
  for (int step = 0; step < 6; ++step) {
    ASSERT_NO_THROW(architecture_step(context, val, g)) << "step " << step;
    EXPECT_FALSE(fast.state.alpha_normal.grad().is_view()) << "step " << step;
    EXPECT_FALSE(fast.state.alpha_reduce.grad().is_view()) << "step " << step;
  }
}

INSTANTIATE_TEST_SUITE_P(GranularityAndM, FastPath,
                         ::testing::Combine(::testing::Values(Granularity::kEdge,
                                                              Granularity::kNode),
                                            ::testing::Values(1, 4, 7)),
                         [](const auto& info) {
                           return granularity_name(std::get<0>(info.param)) + "_M" +
                                  std::to_string(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace datanas
