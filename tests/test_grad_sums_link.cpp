// The link that hands a sep conv's first block its batch norm's gradient sums from the second
// block's backward (kernels/grad_sums_link.h): sums taken only for the very gradient they were
// published with, the second block's sums equal to sums over its input's gradient, and a sep
// conv that takes them equal to its two blocks run without a link.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "kernel_checks.h"
#include "kernels/dw_pw_bn.h"
#include "kernels/grad_sums_link.h"
#include "space/op_blocks.h"
#include "util/error.h"

namespace datanas {
namespace {
using namespace kernel_checks;
using kernels::GradSums;

TEST(GradSumsLink, TakesTheSumsOnlyForThePublishedGradient) {
  const at::Tensor link = kernels::make_grad_sums_link(3);
  EXPECT_TRUE(kernels::link_mean(link).empty());
  kernels::set_link_mean(link, torch::tensor({1.0, 2.0, 3.0}, torch::kDouble));
  EXPECT_EQ(kernels::link_mean(link), (std::vector<double>{1.0, 2.0, 3.0}));

  const at::Tensor grad = torch::randn({2, 3, 4, 4});
  const GradSums sums{{1.0, 2.0, 3.0}, {-1.0, 0.5, 4.0}};
  kernels::publish_grad_sums(link, sums, grad);
  EXPECT_FALSE(kernels::take_grad_sums(link, grad.clone()).has_value());  // another tensor
  EXPECT_FALSE(kernels::take_grad_sums(link, grad).has_value());  // cleared by the first take

  kernels::publish_grad_sums(link, sums, grad);
  grad.add_(1.0);  // changed since
  EXPECT_FALSE(kernels::take_grad_sums(link, grad).has_value());

  kernels::publish_grad_sums(link, sums, grad);
  const c10::optional<GradSums> taken = kernels::take_grad_sums(link, grad);
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(taken->g, sums.g);
  EXPECT_EQ(taken->g_centered, sums.g_centered);
  EXPECT_FALSE(kernels::take_grad_sums(link, grad).has_value());
  EXPECT_EQ(kernels::link_mean(link), (std::vector<double>{1.0, 2.0, 3.0}));  // kept

  EXPECT_THROW(kernels::set_link_mean(link, torch::zeros({4})), Error);
  EXPECT_THROW(kernels::publish_grad_sums(link, {{1.0}, {1.0}}, grad), Error);
  EXPECT_THROW(kernels::link_mean(torch::zeros({5})), Error);  // not a link
}

// The second block on x with the first block's map: the sums it leaves are sum gx and
// sum gx (x - mean) of the gradient it returns for x, in both layouts of the depthwise rows
// (channel blocks at C = 16, NHWC at C = 6), in float and double.
TEST(GradSumsLink, SecondBlockLeavesItsInputGradientsSums) {
  torch::manual_seed(41);
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    const auto o = torch::TensorOptions().dtype(dtype);
    const double tolerance = dtype == at::kFloat ? 1e-5 : 1e-10;
    for (int64_t kernel : {3, 5}) {
      for (int64_t C : {6, 16}) {
        const std::string what = std::string(dtype == at::kFloat ? "float" : "double") + " C " +
                                 std::to_string(C) + " k" + std::to_string(kernel);
        const at::Tensor x = laid_out(torch::randn({3, C, 9, 10}, o) + 0.3, true);
        const at::Tensor map = at::stack({torch::rand({C}, o) + 0.5, torch::randn({C}, o)});
        const at::Tensor mean = torch::randn({C}, torch::kDouble) * 0.1 + 0.3;
        const at::Tensor link = kernels::make_grad_sums_link(C);
        kernels::set_link_mean(link, mean);
        torch::nn::BatchNorm2d bn(7);
        bn->to(dtype);
        const at::Tensor dw = torch::randn({C, 1, kernel, kernel}, o);
        const at::Tensor pw = torch::randn({7, C, 1, 1}, o);
        const at::Tensor xg = x.clone().requires_grad_(true);
        const at::Tensor y =
            dw_pw_batch_norm_weighted(*bn, xg, dw, pw, {1, (kernel - 1) / 2, 1, true}, {}, map,
                                      {{}, link})
                .z;
        const at::Tensor gx =
            torch::autograd::grad({(y * torch::randn(y.sizes(), o)).sum()}, {xg})[0];
        const c10::optional<GradSums> sums = kernels::take_grad_sums(link, gx);
        ASSERT_TRUE(sums.has_value()) << what;
        const at::Tensor gd = gx.to(at::kDouble);
        const at::Tensor centered = x.to(at::kDouble) - mean.view({1, C, 1, 1});
        const at::Tensor want_g = gd.sum({0, 2, 3});
        const at::Tensor want_centered = (gd * centered).sum({0, 2, 3});
        EXPECT_LE(relative_error(torch::tensor(sums->g, torch::kDouble), want_g), tolerance)
            << what;
        EXPECT_LE(relative_error(torch::tensor(sums->g_centered, torch::kDouble), want_centered),
                  tolerance)
            << what;
      }
    }
  }
}

// A sep conv (which links its blocks) against its two blocks chained by hand without a link:
// the same input, weight and batch-norm gradients, with all of them wanted and in an
// architecture step's backward (the input's gradient only).
TEST(GradSumsLink, SepConvEqualsItsBlocksWithoutTheLink) {
  torch::manual_seed(42);
  for (int64_t C : {6, 16}) {
    SepConv sep(C, C, 3, 1, 1, /*affine=*/true, KernelBackend::kNative);
    const at::Tensor x = laid_out(torch::randn({4, C, 8, 8}), true);
    const at::Tensor up = torch::randn({4, C, 8, 8});
    auto blocks = sep->named_children();
    DilConvImpl* first_block = blocks["first"]->as<DilConvImpl>();
    DilConvImpl* second_block = blocks["second"]->as<DilConvImpl>();
    const auto by_hand = [&](const at::Tensor& in) {
      const kernels::WeightedOutput first =
          first_block->forward_weighted(in, kernels::unit_output_weight(in));
      return second_block->forward_weighted(first.z, {}, first.map).z;
    };
    const std::string what = "C " + std::to_string(C);
    const at::Tensor xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
    const std::vector<at::Tensor> params = sep->parameters();
    std::vector<at::Tensor> wrt_a{xa}, wrt_b{xb};
    wrt_a.insert(wrt_a.end(), params.begin(), params.end());
    wrt_b.insert(wrt_b.end(), params.begin(), params.end());
    const auto ga = torch::autograd::grad({(sep(xa) * up).sum()}, wrt_a);
    const auto gb = torch::autograd::grad({(by_hand(xb) * up).sum()}, wrt_b);
    ASSERT_EQ(ga.size(), gb.size());
    for (size_t i = 0; i < ga.size(); ++i)
      EXPECT_LE(relative_error(ga[i], gb[i]), 1e-5) << what << " gradient " << i;
    const at::Tensor input_only = x.clone().requires_grad_(true);
    const at::Tensor g = torch::autograd::grad({(sep(input_only) * up).sum()}, {input_only})[0];
    EXPECT_LE(relative_error(g, ga[0]), 1e-5) << what << " input only";
  }
}

}  // namespace
}  // namespace datanas
