// The native gradient clipping and SGD step (kernels/sgd_step.h) against LibTorch's: the norm,
// the clipped gradients, parameters and momentum buffers over several steps of each option set,
// a state saved by one and stepped by the other, and the cases left to LibTorch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>
#include <vector>

#include "kernels/cpu_capability.h"
#include "kernels/sgd_step.h"
#include "util/schedule.h"

namespace datanas {
namespace {

// Parameters of several shapes: a bias, a channels-last conv weight, an odd matrix, and one
// tensor of several parallel chunks. The last parameter never gets a gradient.
std::vector<at::Tensor> make_params(at::ScalarType dtype) {
  const auto o = torch::TensorOptions().dtype(dtype);
  return {torch::randn({3}, o),
          torch::randn({16, 8, 3, 3}, o).contiguous(at::MemoryFormat::ChannelsLast),
          torch::randn({5, 7}, o), torch::randn({40000}, o), torch::randn({4}, o)};
}

std::vector<at::Tensor> copies(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& p : params)
    out.push_back(p.detach().clone(at::MemoryFormat::Preserve).requires_grad_(true));
  return out;
}

void set_gradients(std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads) {
  for (size_t i = 0; i + 1 < params.size(); ++i)
    params[i].mutable_grad() = grads[i].clone(at::MemoryFormat::Preserve);
}

std::vector<at::Tensor> random_gradients(const std::vector<at::Tensor>& params, double scale) {
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : params) grads.push_back(torch::randn_like(p) * scale);
  return grads;
}

// Equal up to rounding: the clipping scale comes from a norm summed in double (LibTorch's in
// float).
void expect_close(const at::Tensor& a, const at::Tensor& b) {
  ASSERT_EQ(a.sizes(), b.sizes());
  const double tolerance = a.scalar_type() == at::kFloat ? 1e-6 : 1e-13;
  EXPECT_TRUE(torch::allclose(a, b, 0, tolerance)) << (a - b).abs().max().item<double>();
}

// The SGD step's float numbers are LibTorch's bit for bit (its arithmetic, fused where LibTorch
// fuses: in the AVX2 and AVX-512 tables); double ones, and float ones of the portable table
// (DATANAS_CPU_CAPABILITY=portable on a CPU where LibTorch fuses), to rounding.
void expect_same_step(const at::Tensor& a, const at::Tensor& b) {
  const bool fused = kernels::kernel_capability() != kernels::CpuCapability::kPortable;
  if (a.scalar_type() != at::kFloat || !fused) return expect_close(a, b);
  EXPECT_TRUE(torch::equal(a, b)) << (a - b).abs().max().item<double>();
}

// The same parameters under two SGD optimizers: ours steps natively, theirs is LibTorch's.
struct TwoOptimizers {
  std::vector<at::Tensor> base, ours, theirs;
  torch::optim::SGD ours_sgd, theirs_sgd;
  TwoOptimizers(const torch::optim::SGDOptions& options, at::ScalarType dtype)
      : base(make_params(dtype)),
        ours(copies(base)),
        theirs(copies(base)),
        ours_sgd(ours, options),
        theirs_sgd(theirs, options) {}
  void step(const std::vector<at::Tensor>& grads, KernelBackend backend) {
    set_gradients(ours, grads);
    set_gradients(theirs, grads);
    sgd_step(ours_sgd, backend);
    theirs_sgd.step();
  }
};

TEST(KernelSgdStep, ClippingMatchesLibTorch) {
  torch::manual_seed(3);
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    for (double scale : {1.0, 1e-3}) {  // norm about 200: clipped; about 0.2: left alone
      const std::vector<at::Tensor> base = make_params(dtype);
      const std::vector<at::Tensor> grads = random_gradients(base, scale);
      std::vector<at::Tensor> ours = copies(base), theirs = copies(base);
      set_gradients(ours, grads);
      set_gradients(theirs, grads);
      const double norm = clip_grad_norm(ours, 5.0, KernelBackend::kNative);
      const double expected = torch::nn::utils::clip_grad_norm_(theirs, 5.0);
      EXPECT_NEAR(norm, expected, 1e-6 * expected);
      for (size_t i = 0; i + 1 < ours.size(); ++i) expect_close(ours[i].grad(), theirs[i].grad());
      EXPECT_FALSE(ours.back().grad().defined());
      if (scale < 1) {
        EXPECT_TRUE(torch::equal(ours[0].grad(), grads[0]));
      }
    }
  }
}

TEST(KernelSgdStep, ClippingANonFiniteNormPoisonsTheGradientsAsLibTorchDoes) {
  std::vector<at::Tensor> params = copies(make_params(at::kFloat));
  set_gradients(params, random_gradients(params, 1.0));
  params[3].mutable_grad()[17] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(clip_grad_norm(params, 5.0, KernelBackend::kNative)));
  EXPECT_TRUE(torch::isnan(params[0].grad()).all().item<bool>());
}

TEST(KernelSgdStep, StepsMatchLibTorchForEachOptionSet) {
  using torch::optim::SGDOptions;
  const std::vector<SGDOptions> option_sets = {
      SGDOptions(0.1).momentum(0.9).weight_decay(3e-4),
      SGDOptions(0.1).momentum(0.9).dampening(0.1),
      SGDOptions(0.05).momentum(0.8).weight_decay(1e-3).nesterov(true),
      SGDOptions(0.1).weight_decay(1e-4),
  };
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    for (const SGDOptions& options : option_sets) {
      torch::manual_seed(5);
      TwoOptimizers two(options, dtype);
      for (int step = 0; step < 3; ++step) {
        set_learning_rate(two.ours_sgd, 0.1 / (step + 1));  // the schedule reaches the group
        set_learning_rate(two.theirs_sgd, 0.1 / (step + 1));
        two.step(random_gradients(two.base, 1.0), KernelBackend::kNative);
      }
      for (size_t i = 0; i < two.ours.size(); ++i) {
        expect_same_step(two.ours[i], two.theirs[i]);
        EXPECT_EQ(two.ours[i].strides(), two.theirs[i].strides());
      }
      EXPECT_TRUE(torch::equal(two.ours.back(), two.base.back()));  // no gradient: untouched
      EXPECT_EQ(two.ours_sgd.state().size(), two.theirs_sgd.state().size());
      if (options.momentum() == 0) continue;
      auto buffer = [](torch::optim::SGD& sgd, const at::Tensor& p) {
        return static_cast<torch::optim::SGDParamState&>(
                   *sgd.state().at(c10::guts::to_string(p.unsafeGetTensorImpl())))
            .momentum_buffer();
      };
      for (size_t i = 0; i + 1 < two.ours.size(); ++i) {
        expect_same_step(buffer(two.ours_sgd, two.ours[i]), buffer(two.theirs_sgd, two.theirs[i]));
      }
    }
  }
}

TEST(KernelSgdStep, StateSavedByOneIsSteppedByTheOther) {
  torch::manual_seed(9);
  TwoOptimizers two(torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(3e-4), at::kFloat);
  two.step(random_gradients(two.base, 1.0), KernelBackend::kNative);
  // Swap: LibTorch continues from the native step's buffers and the other way round.
  std::stringstream ours_saved, theirs_saved;
  torch::serialize::OutputArchive a, b;
  two.ours_sgd.save(a);
  two.theirs_sgd.save(b);
  a.save_to(ours_saved);
  b.save_to(theirs_saved);
  torch::serialize::InputArchive ra, rb;
  ra.load_from(ours_saved);
  rb.load_from(theirs_saved);
  two.theirs_sgd.load(ra);
  two.ours_sgd.load(rb);
  two.step(random_gradients(two.base, 1.0), KernelBackend::kNative);
  for (size_t i = 0; i < two.ours.size(); ++i) expect_same_step(two.ours[i], two.theirs[i]);
}

TEST(KernelSgdStep, LeavesToLibTorchWhatTheFlatKernelCannotTake) {
  torch::manual_seed(13);
  TwoOptimizers two(torch::optim::SGDOptions(0.1).momentum(0.9).weight_decay(3e-4), at::kFloat);
  std::vector<at::Tensor> grads = random_gradients(two.base, 1.0);
  grads[2] = torch::randn({7, 5}).t();  // strides that differ from the parameter's
  // One gradient the flat kernel cannot pair with its parameter: the whole step is LibTorch's.
  for (KernelBackend backend : {KernelBackend::kNative, KernelBackend::kTorch}) {
    two.step(grads, backend);
    for (size_t i = 0; i < two.ours.size(); ++i)
      EXPECT_TRUE(torch::equal(two.ours[i], two.theirs[i]));
  }
}

}  // namespace
}  // namespace datanas
