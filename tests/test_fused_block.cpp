// The fused ReLU -> depthwise -> pointwise block (kernels/dw_pw_block.h) that sep and dil convs
// run without autograd: outputs and batch-norm statistics equal LibTorch's modules on random
// shapes (odd sizes, batch 1, channel counts off multiples of 8), in float and double.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "kernel_checks.h"
#include "kernels/dw_pw_block.h"
#include "space/op_blocks.h"
#include "space/ops.h"
#include "util/error.h"

namespace datanas {
namespace {
using namespace kernel_checks;

at::Tensor channels_last(const at::Tensor& x) {
  return x.contiguous(at::MemoryFormat::ChannelsLast);
}

// Every sep/dil conv of the registry, both strides, affine or not: the fused forward without
// autograd against the LibTorch module with the same parameters, including the running
// statistics of every batch norm inside.
TEST(FusedBlock, SepAndDilConvsMatchLibTorchWithoutAutograd) {
  for (const std::string name : {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"}) {
    for (int64_t stride : {1, 2}) {
      for (bool affine : {false, true}) {
        for (const Shape& s : kShapes) {
          torch::manual_seed(11);
          torch::nn::AnyModule reference =
              make_cnn_op(name, s.c, stride, affine, false, KernelBackend::kTorch);
          torch::manual_seed(11);
          torch::nn::AnyModule fused =
              make_cnn_op(name, s.c, stride, affine, false, KernelBackend::kNative);
          if (affine) {  // non-trivial BN parameters, the same in both modules
            at::NoGradGuard no_grad;
            auto pr = reference.ptr()->named_parameters(), pf = fused.ptr()->named_parameters();
            for (const auto& item : pr) {
              if (item.key().find("bn") == std::string::npos) continue;
              item.value().normal_();
              pf[item.key()].copy_(item.value());
            }
          }
          const at::Tensor x = channels_last(torch::randn({s.n, s.c, s.h, s.w}) * 2 + 0.5);
          const std::string what = name + " s" + std::to_string(stride) +
                                   (affine ? " affine " : " ") + std::to_string(s.n) + "x" +
                                   std::to_string(s.c) + "x" + std::to_string(s.h) + "x" +
                                   std::to_string(s.w);
          at::NoGradGuard no_grad;
          const at::Tensor expected = reference.forward<at::Tensor>(x);
          const at::Tensor got = fused.forward<at::Tensor>(x);
          EXPECT_TRUE(got.is_contiguous(at::MemoryFormat::ChannelsLast)) << what;
          EXPECT_LE(relative_error(got, expected), 1e-5) << what;
          expect_buffers_close(*fused.ptr(), *reference.ptr(), what);
        }
      }
    }
  }
}

// The block itself in double, with a pending input affine map (the first batch norm of a sep
// conv) and k = 5 at dilation 2: z and its moments against at:: ops.
TEST(FusedBlock, BlockAndMomentsMatchAtenInDouble) {
  torch::manual_seed(12);
  for (const Shape& s : kShapes) {
    for (int64_t stride : {1, 2}) {
      const int64_t outputs = s.c + 3;
      const at::Tensor x = channels_last(torch::randn({s.n, s.c, s.h, s.w}, torch::kDouble) + 3);
      const at::Tensor dw = torch::randn({s.c, 1, 5, 5}, torch::kDouble);
      const at::Tensor pw = torch::randn({outputs, s.c, 1, 1}, torch::kDouble);
      const ChannelAffine affine{torch::randn({s.c}, torch::kDouble),
                                 torch::randn({s.c}, torch::kDouble)};
      at::NoGradGuard no_grad;
      const DwPwOutput got = native_dw_pw_forward(x, dw, pw, {stride, 4, 2, true}, &affine);
      const at::Tensor a =
          at::relu(x * affine.scale.view({1, -1, 1, 1}) + affine.offset.view({1, -1, 1, 1}));
      const at::Tensor z = at::conv2d(at::conv2d(a, dw, {}, stride, 4, 2, s.c), pw);
      const std::string what = std::to_string(s.n) + "x" + std::to_string(s.c) + "x" +
                               std::to_string(s.h) + "x" + std::to_string(s.w) + " s" +
                               std::to_string(stride);
      EXPECT_LE(relative_error(got.z, z), 1e-10) << what;
      EXPECT_EQ(got.count, z.size(0) * z.size(2) * z.size(3)) << what;
      EXPECT_LE(relative_error(got.mean, z.mean({0, 2, 3})), 1e-10) << what;
      EXPECT_LE(relative_error(got.var, z.var({0, 2, 3}, /*unbiased=*/false)), 1e-10) << what;
    }
  }
}

// Outside its domain the fused path is not taken, and asked directly it refuses clearly.
TEST(FusedBlock, RefusesWhatItCannotRun) {
  const at::Tensor dw = torch::randn({4, 1, 3, 3}), pw = torch::randn({4, 4, 1, 1});
  const at::Tensor nchw = torch::randn({2, 4, 6, 6});
  at::NoGradGuard no_grad;
  EXPECT_FALSE(can_fuse_dw_pw(nchw));
  EXPECT_TRUE(can_fuse_dw_pw(channels_last(nchw)));
  EXPECT_THROW(native_dw_pw_forward(nchw, dw, pw, {1, 1, 1, true}, nullptr), Error);
  EXPECT_THROW(
      native_dw_pw_forward(channels_last(nchw), dw, torch::randn({4, 3, 1, 1}), {}, nullptr),
      Error);
  {
    at::AutoGradMode grad(true);
    EXPECT_FALSE(can_fuse_dw_pw(channels_last(nchw)));
  }
  DilConv op(4, 4, 3, 1, 1, 1, false, KernelBackend::kNative);
  op->eval();  // running statistics: the unfused path
  EXPECT_FALSE(op->can_fuse(channels_last(nchw)));
}

}  // namespace
}  // namespace datanas
