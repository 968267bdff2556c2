// Several ReLU -> 1x1 conv -> BN blocks reading one state in one fused pass
// (pointwise_conv_batch_norms, relu_conv_bn_shared), the state whole or as its channel parts
// (kernels/channel_parts.h): outputs, the input's gradient (written once for all heads, one
// tensor per part), every parameter's gradient and the running statistics against the blocks
// run one by one on LibTorch's kernels on the joined input; an output nobody uses; finite
// differences in double; parts that do not make one input refused.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kernel_checks.h"
#include "kernels/pointwise_conv_bn.h"
#include "space/op_blocks.h"
#include "util/error.h"

namespace datanas {
namespace {
using namespace kernel_checks;

// Heads of 5 (affine), 16 and 9 (affine) outputs on an input of `inputs` channels.
struct Blocks {
  std::vector<ReLUConvBN> native, torch_;
  explicit Blocks(int64_t inputs) {
    const std::vector<std::pair<int64_t, bool>> heads = {{5, true}, {16, false}, {9, true}};
    for (const auto& [outputs, affine] : heads) {
      native.emplace_back(inputs, outputs, 1, 1, 0, affine, KernelBackend::kNative);
      torch_.emplace_back(inputs, outputs, 1, 1, 0, affine, KernelBackend::kTorch);
      torch::NoGradGuard no_grad;
      for (auto& p : native.back()->parameters()) p.normal_();
      auto from = native.back()->parameters();
      auto to = torch_.back()->parameters();
      for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
    }
  }
  std::vector<ReLUConvBNImpl*> native_blocks() {
    std::vector<ReLUConvBNImpl*> out;
    for (auto& b : native) out.push_back(b.get());
    return out;
  }
};

// sum_h <up[h], y[h]> over the heads in `used`, backpropagated.
void backprop(const std::vector<at::Tensor>& ys, const std::vector<at::Tensor>& up,
              const std::vector<size_t>& used) {
  at::Tensor loss = at::zeros({}, ys[0].options());
  for (size_t h : used) loss = loss + (ys[h] * up[h]).sum();
  loss.backward();
}

// The native blocks read the input as parts of `channels` (one: whole); size: the batch, height
// and width.
void expect_heads_match(const std::vector<size_t>& used, at::ScalarType dtype,
                        const std::vector<int64_t>& channels = {12},
                        const std::vector<int64_t>& size = {3, 7, 9}) {
  torch::manual_seed(41);
  int64_t inputs = 0;
  for (int64_t c : channels) inputs += c;
  Blocks blocks(inputs);
  for (auto* list : {&blocks.native, &blocks.torch_})
    for (auto& b : *list) b->to(dtype);
  const at::Tensor data =
      laid_out(torch::randn({size[0], inputs, size[1], size[2]}, dtype) + 0.3, true);
  std::vector<at::Tensor> parts;
  for (const at::Tensor& part : data.split_with_sizes(channels, 1))
    parts.push_back(part.contiguous(at::MemoryFormat::ChannelsLast).requires_grad_(true));
  const at::Tensor x_ref = data.clone().requires_grad_(true);
  const std::vector<at::Tensor> ys = relu_conv_bn_shared(blocks.native_blocks(), parts);
  std::vector<at::Tensor> ys_ref, up;
  for (size_t h = 0; h < ys.size(); ++h) {
    ys_ref.push_back(blocks.torch_[h](x_ref));
    up.push_back(torch::randn(ys_ref[h].sizes(), dtype));
    EXPECT_NE(grad_fn_name(ys[h]).find("PointwiseConvBNFunction"), std::string::npos);
    EXPECT_EQ(ys[h].grad_fn(), ys[0].grad_fn());  // one autograd node for all heads
  }
  backprop(ys, up, used);
  backprop(ys_ref, up, used);
  const double tolerance = dtype == at::kFloat ? 1e-5 : 1e-12;
  for (size_t h = 0; h < ys.size(); ++h) {
    EXPECT_LE(relative_error(ys[h].detach(), ys_ref[h].detach()), tolerance) << "head " << h;
    expect_buffers_close(*blocks.native[h], *blocks.torch_[h], "head " + std::to_string(h));
    const bool is_used = std::find(used.begin(), used.end(), h) != used.end();
    auto params = blocks.native[h]->parameters();
    auto params_ref = blocks.torch_[h]->parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      if (!is_used) {
        EXPECT_FALSE(params[i].grad().defined() && params[i].grad().abs().max().item<double>() > 0)
            << "unused head " << h << " parameter " << i;
        continue;
      }
      ASSERT_TRUE(params[i].grad().defined()) << "head " << h << " parameter " << i;
      EXPECT_LE(relative_error(params[i].grad(), params_ref[i].grad()), tolerance)
          << "head " << h << " parameter " << i;
    }
  }
  std::vector<at::Tensor> grads;
  for (const at::Tensor& part : parts) {
    ASSERT_TRUE(part.grad().defined());
    expect_layout(part.grad(), true, "input gradient");
    EXPECT_TRUE(part.grad().is_contiguous(at::MemoryFormat::ChannelsLast));
    grads.push_back(part.grad());
  }
  EXPECT_LE(relative_error(at::cat(grads, 1), x_ref.grad()), tolerance) << "input gradient";
}

TEST(PointwiseHeads, SharedInputMatchesTheBlocksOnLibTorch) {
  expect_heads_match({0, 1, 2}, at::kFloat);
  expect_heads_match({0, 1, 2}, at::kDouble);
}

TEST(PointwiseHeads, AnUnusedOutputAddsNothing) { expect_heads_match({0, 2}, at::kFloat); }

// Parts of odd channel counts, and of whole vectors (16 outputs of 32 inputs: AVX-512's held
// weights), over more than one run and chunk of pixels (3 x 40 x 30).
TEST(PointwiseHeads, ChannelPartsMatchTheJoinedInput) {
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    expect_heads_match({0, 1, 2}, dtype, {5, 4, 3});
    expect_heads_match({0, 2}, dtype, {7, 5});
    expect_heads_match({0, 1, 2}, dtype, {16, 16}, {3, 40, 30});
  }
}

TEST(PointwiseHeads, RefusesPartsOfDifferentSizes) {
  auto bn = torch::nn::BatchNorm2d(torch::nn::BatchNormOptions(4).affine(false));
  const at::Tensor a = laid_out(torch::randn({2, 3, 5, 5}), true);
  const at::Tensor b = laid_out(torch::randn({2, 2, 5, 4}), true);
  const at::Tensor w = torch::randn({4, 5, 1, 1});
  try {
    pointwise_conv_batch_norms({{bn.get(), w}}, {a, b}, true);
    ADD_FAILURE() << "parts of different widths were taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input parts of one dtype, batch, height and width"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(pointwise_conv_batch_norms({{bn.get(), w}}, {}, true), Error);
}

TEST(PointwiseHeads, FiniteDifferencesInDouble) {
  torch::manual_seed(43);
  auto bn_a = torch::nn::BatchNorm2d(torch::nn::BatchNormOptions(3).affine(true));
  auto bn_b = torch::nn::BatchNorm2d(torch::nn::BatchNormOptions(4).affine(false));
  bn_a->to(torch::kDouble);
  bn_b->to(torch::kDouble);
  const at::Tensor x = laid_out(torch::randn({2, 5, 3, 2}, torch::kDouble), true);
  const auto o = torch::TensorOptions().dtype(torch::kDouble);
  // leaves: conv weight a, bn weight a, bn bias a, conv weight b.
  const std::vector<at::Tensor> leaves = {torch::randn({3, 5, 1, 1}, o), torch::randn({3}, o),
                                          torch::randn({3}, o), torch::randn({4, 5, 1, 1}, o)};
  for (const std::vector<int64_t>& channels : {std::vector<int64_t>{5}, {2, 3}}) {
    expect_finite_differences(
        [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          bn_a->weight = l[1];
          bn_a->bias = l[2];
          const std::vector<at::Tensor> parts = in.split_with_sizes(channels, 1);
          const std::vector<at::Tensor> ys =
              pointwise_conv_batch_norms({{bn_a.get(), l[0]}, {bn_b.get(), l[3]}}, parts, true);
          return at::cat({ys[0], ys[1]}, 1);
        },
        x, leaves, channels.size() == 1 ? "two heads" : "two heads, two parts");
  }
}

}  // namespace
}  // namespace datanas
