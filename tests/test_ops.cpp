// The DARTS candidate operations: output shapes at both strides and odd sizes, the exact
// behaviour of none / skip / FactorizedReduce / average pooling, and parameter counts.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "space/op_blocks.h"
#include "space/ops.h"
#include "util/error.h"

namespace datanas {
namespace {

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters()) total += p.numel();
  return total;
}

at::Tensor run(torch::nn::AnyModule& op, const at::Tensor& x) { return op.forward<at::Tensor>(x); }

TEST(Ops, RegistryHasTheEightDartsOps) {
  const std::vector<std::string> expected = {"none",         "max_pool_3x3", "avg_pool_3x3",
                                             "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                                             "dil_conv_3x3", "dil_conv_5x5"};
  EXPECT_EQ(cnn_op_names(), expected);
  EXPECT_EQ(cnn_op_names()[kNoneOp], "none");
  EXPECT_THROW(make_cnn_op("conv_7x1_1x7", 4, 1, false, true), Error);
}

TEST(Ops, OutputShapesAtStrideOneAndTwo) {
  torch::manual_seed(0);
  const int64_t N = 2, C = 6;
  for (int64_t size : {8, 7, 28}) {
    for (int64_t stride : {1, 2}) {
      for (bool affine : {false, true}) {
        for (const std::string& name : cnn_op_names()) {
          torch::nn::AnyModule op = make_cnn_op(name, C, stride, affine, /*pool_bn=*/!affine);
          at::Tensor x = torch::randn({N, C, size, size});
          at::Tensor y = run(op, x);
          const int64_t expected = stride == 1 ? size : (size + 1) / 2;
          EXPECT_EQ(y.sizes(), (std::vector<int64_t>{N, C, expected, expected}))
              << name << " stride " << stride << " size " << size;
          EXPECT_TRUE(torch::isfinite(y).all().item<bool>()) << name;
        }
      }
    }
  }
}

TEST(Ops, NoneGivesZerosOfTheOutputShape) {
  for (int64_t stride : {1, 2}) {
    torch::nn::AnyModule op = make_cnn_op("none", 3, stride, false, true);
    at::Tensor x = torch::randn({2, 3, 7, 7}) + 5.0;
    at::Tensor y = run(op, x);
    EXPECT_EQ(y.size(2), stride == 1 ? 7 : 4);
    EXPECT_EQ(y.abs().max().item<float>(), 0.0f);
    EXPECT_EQ(parameter_count(*op.ptr()), 0);
  }
}

TEST(Ops, SkipConnectAtStrideOneIsIdentity) {
  torch::nn::AnyModule op = make_cnn_op("skip_connect", 5, 1, true, false);
  at::Tensor x = torch::randn({3, 5, 9, 9});
  EXPECT_TRUE(torch::equal(run(op, x), x));
  EXPECT_EQ(parameter_count(*op.ptr()), 0);
}

TEST(Ops, SkipConnectAtStrideTwoIsFactorizedReduce) {
  const int64_t C = 8;
  torch::nn::AnyModule op = make_cnn_op("skip_connect", C, 2, /*affine=*/true, false);
  EXPECT_NE(op.ptr()->as<FactorizedReduceImpl>(), nullptr);
  // Two 1x1 convs of C/2 output channels each plus affine BN.
  EXPECT_EQ(parameter_count(*op.ptr()), C * (C / 2) * 2 + 2 * C);
}

TEST(Ops, FactorizedReduceHalvesAndChangesChannels) {
  torch::manual_seed(1);
  for (int64_t size : {8, 7, 28}) {
    FactorizedReduce reduce(6, 10, /*affine=*/false);
    at::Tensor y = reduce->forward(torch::randn({2, 6, size, size}));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 10, (size + 1) / 2, (size + 1) / 2}));
  }
  // Odd output channels: the two halves are c/2 and c - c/2.
  FactorizedReduce odd(4, 5, false);
  EXPECT_EQ(parameter_count(*odd), 4 * 2 + 4 * 3);
}

TEST(Ops, FactorizedReduceSeesBothPixelGrids) {
  // Each half of the output reads a different pixel grid: an image that is non-zero only on
  // odd pixels gives zero on the even half and non-zero on the shifted half (eval-mode BN,
  // fresh running statistics, is the identity).
  FactorizedReduce reduce(1, 2, false);
  reduce->eval();
  at::Tensor x = torch::zeros({1, 1, 8, 8});
  x.slice(2, 1, 8, 2).slice(3, 1, 8, 2).fill_(1.0);
  at::Tensor y = reduce->forward(x);
  // ReLU of x is x; a 1x1 conv of a zero grid is zero.
  EXPECT_NEAR(y[0][0].abs().max().item<float>(), 0.0f, 1e-6);
  EXPECT_GT(y[0][1].abs().max().item<float>(), 1e-6);
}

TEST(Ops, AvgPoolExcludesPadding) {
  for (int64_t stride : {1, 2}) {
    torch::nn::AnyModule op = make_cnn_op("avg_pool_3x3", 2, stride, false, /*pool_bn=*/false);
    at::Tensor x = torch::full({1, 2, 7, 7}, 3.0);
    at::Tensor y = run(op, x);
    // With count_include_pad the corner would be 3 * 4 / 9.
    EXPECT_FLOAT_EQ(y[0][0][0][0].item<float>(), 3.0f);
    EXPECT_FLOAT_EQ(y[0][1][y.size(2) - 1][y.size(3) - 1].item<float>(), 3.0f);
    EXPECT_NEAR((y - 3.0).abs().max().item<float>(), 0.0f, 1e-6);
  }
}

TEST(Ops, MaxPoolTakesTheNeighbourhoodMaximum) {
  torch::nn::AnyModule op = make_cnn_op("max_pool_3x3", 1, 1, false, /*pool_bn=*/false);
  at::Tensor x = -torch::ones({1, 1, 5, 5});  // negative: zero padding would win if used
  x[0][0][2][2] = 4.0;
  at::Tensor y = run(op, x);
  EXPECT_FLOAT_EQ(y[0][0][0][0].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(y[0][0][1][1].item<float>(), 4.0f);
  EXPECT_FLOAT_EQ(y[0][0][3][3].item<float>(), 4.0f);
  EXPECT_FLOAT_EQ(y[0][0][4][4].item<float>(), -1.0f);
}

TEST(Ops, PoolBatchNormIsOptionalAndNeverAffine) {
  torch::nn::AnyModule with_bn = make_cnn_op("max_pool_3x3", 4, 1, /*affine=*/true, true);
  torch::nn::AnyModule without_bn = make_cnn_op("avg_pool_3x3", 4, 1, true, false);
  EXPECT_EQ(parameter_count(*with_bn.ptr()), 0);   // BN after pools is affine=false
  EXPECT_EQ(with_bn.ptr()->buffers().size(), 3u);  // running mean, var, batches tracked
  EXPECT_EQ(without_bn.ptr()->buffers().size(), 0u);
}

TEST(Ops, SepConvParameterCounts) {
  const int64_t C = 16;
  const int64_t convs = 2 * (C * 3 * 3 + C * C);  // two (depthwise 3x3 + pointwise 1x1)
  for (int64_t stride : {1, 2}) {
    EXPECT_EQ(parameter_count(*make_cnn_op("sep_conv_3x3", C, stride, false, true).ptr()), convs);
    EXPECT_EQ(parameter_count(*make_cnn_op("sep_conv_3x3", C, stride, true, false).ptr()),
              convs + 2 * 2 * C);  // two affine BNs, weight and bias each
  }
  EXPECT_EQ(parameter_count(*make_cnn_op("sep_conv_5x5", C, 1, true, false).ptr()),
            2 * (C * 25 + C * C) + 4 * C);
  EXPECT_EQ(parameter_count(*make_cnn_op("dil_conv_3x3", C, 1, true, false).ptr()),
            C * 9 + C * C + 2 * C);
  EXPECT_EQ(parameter_count(*make_cnn_op("dil_conv_5x5", C, 1, false, true).ptr()), C * 25 + C * C);
}

TEST(Ops, DilatedConvReachesTwoPixelsPerTap) {
  // A dilation-2 3x3 depthwise conv sees pixels at offsets -2, 0, 2 only: an impulse at the
  // centre changes the output at distance 2 but not at distance 1 (eval-mode BN is monotone
  // per channel, so "unchanged" survives it).
  torch::manual_seed(3);
  DilConv conv(1, 1, 3, 1, 2, 2, false);
  conv->eval();
  at::Tensor base = torch::ones({1, 1, 9, 9});
  at::Tensor impulse = base.clone();
  impulse[0][0][4][4] = 5.0;
  at::Tensor diff = (conv->forward(impulse) - conv->forward(base)).abs()[0][0];
  EXPECT_GT(diff[4][6].item<float>(), 1e-6);
  EXPECT_GT(diff[2][2].item<float>(), 1e-6);
  EXPECT_EQ(diff[4][5].item<float>(), 0.0f);
  EXPECT_EQ(diff[3][4].item<float>(), 0.0f);
}

}  // namespace
}  // namespace datanas
