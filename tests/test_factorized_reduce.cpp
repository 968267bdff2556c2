// The native FactorizedReduce convolutions (kernels/factorized_reduce.h) against LibTorch's
// relu -> pad -> slice -> conv -> cat, in float and in double by finite differences; the AVX2
// table against the portable one; and the module taking the native path in channels-last.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "kernel_checks.h"
#include "kernels/factorized_reduce.h"
#include "kernels/nhwc_kernels.h"
#include "space/op_blocks.h"
#include "util/error.h"

namespace datanas {
namespace {
using namespace kernel_checks;

// DARTS' FactorizedReduce convolutions written with LibTorch ops, the reference. In NCHW:
// LibTorch 1.13's backward of these convs on a channels-last input corrupts the heap for some
// shapes (2x5x8x8 input, 8 outputs per grid).
at::Tensor reference_reduce(const at::Tensor& x, const at::Tensor& w_even,
                            const at::Tensor& w_odd) {
  const at::Tensor a = at::relu(x.contiguous());
  const at::Tensor shifted = at::constant_pad_nd(a, {0, 1, 0, 1}, 0).slice(2, 1).slice(3, 1);
  return at::cat({at::conv2d(a, w_even, {}, 2), at::conv2d(shifted, w_odd, {}, 2)}, 1);
}

std::string reduce_name(const Shape& s, int64_t outputs) {
  return std::to_string(s.n) + "x" + std::to_string(s.c) + "x" + std::to_string(s.h) + "x" +
         std::to_string(s.w) + " -> " + std::to_string(outputs);
}

// Odd and even sizes (the shifted grid then reads padding), batch 1, channel counts that use
// every block width, and outputs split unevenly between the grids.
TEST(FactorizedReduceKernel, MatchesLibTorch) {
  torch::manual_seed(11);
  std::vector<Shape> shapes = kShapes;
  shapes.push_back({2, 24, 9, 10});
  shapes.push_back({1, 40, 1, 3});
  for (const Shape& s : shapes) {
    for (int64_t outputs : {7, 16, 34}) {
      const int64_t even = outputs / 2;
      const at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}), true);
      const at::Tensor we = torch::randn({even, s.c, 1, 1}),
                       wo = torch::randn({outputs - even, s.c, 1, 1});
      const at::Tensor probe = reference_reduce(x, we, wo);
      const at::Tensor up = torch::randn(probe.sizes());
      const auto native = value_and_grads(
          [](const at::Tensor& in, const std::vector<at::Tensor>& w) {
            return native_factorized_reduce(in, w[0], w[1]);
          },
          x, {we, wo}, up);
      const auto expected = value_and_grads(
          [](const at::Tensor& in, const std::vector<at::Tensor>& w) {
            return reference_reduce(in, w[0], w[1]);
          },
          x, {we, wo}, up);
      const std::string what = reduce_name(s, outputs);
      expect_close(native, expected, what);
      expect_layout(native[0], true, what);
    }
  }
}

TEST(FactorizedReduceKernel, FiniteDifferencesInDouble) {
  torch::manual_seed(12);
  for (const Shape& s : {Shape{2, 3, 5, 7}, Shape{1, 4, 4, 6}}) {
    const at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}, torch::kDouble), true);
    const at::Tensor we = torch::randn({2, s.c, 1, 1}, torch::kDouble);
    const at::Tensor wo = torch::randn({3, s.c, 1, 1}, torch::kDouble);
    expect_finite_differences(
        [](const at::Tensor& in, const std::vector<at::Tensor>& w) {
          return native_factorized_reduce(in, w[0], w[1]);
        },
        x, {we, wo}, reduce_name(s, 5));
  }
}

// x given as its channel parts (a supernet cell's nodes): odd counts and whole vectors, an odd
// size, float and double (by finite differences too); each part gets its own gradient, laid out
// as the part.
TEST(FactorizedReduceKernel, ChannelPartsMatchTheWholeInput) {
  torch::manual_seed(14);
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases = {
      {Shape{2, 24, 9, 10}, {5, 16, 3}}, {Shape{3, 12, 8, 8}, {7, 5}}};
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    for (const auto& [s, channels] : cases) {
      const at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}, dtype), true);
      const at::Tensor we = torch::randn({4, s.c, 1, 1}, dtype);
      const at::Tensor wo = torch::randn({5, s.c, 1, 1}, dtype);
      const auto on_parts = [&](const at::Tensor& in, const std::vector<at::Tensor>& w) {
        return native_factorized_reduce(in.split_with_sizes(channels, 1), w[0], w[1]);
      };
      const at::Tensor up = torch::randn({s.n, 9, (s.h + 1) / 2, (s.w + 1) / 2}, dtype);
      const std::string what = reduce_name(s, 9) + " in " + std::to_string(channels.size());
      expect_close(value_and_grads(on_parts, x, {we, wo}, up),
                   value_and_grads(
                       [](const at::Tensor& in, const std::vector<at::Tensor>& w) {
                         return reference_reduce(in, w[0], w[1]);
                       },
                       x, {we, wo}, up),
                   what);
      if (dtype == at::kDouble) expect_finite_differences(on_parts, x, {we, wo}, what);
      std::vector<at::Tensor> parts;
      for (const at::Tensor& part : x.split_with_sizes(channels, 1))
        parts.push_back(part.contiguous(at::MemoryFormat::ChannelsLast).requires_grad_(true));
      (native_factorized_reduce(parts, we, wo) * up).sum().backward();
      for (const at::Tensor& part : parts) {
        ASSERT_TRUE(part.grad().defined()) << what;
        EXPECT_TRUE(part.grad().is_contiguous(at::MemoryFormat::ChannelsLast)) << what;
        EXPECT_EQ(part.grad().sizes(), part.sizes()) << what;
      }
    }
  }
}

TEST(FactorizedReduceKernel, Avx2MatchesPortable) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    GTEST_SKIP() << "no AVX2 + FMA on this CPU";
  torch::manual_seed(13);
  for (int64_t C : {int64_t{5}, int64_t{16}, int64_t{27}}) {
    kernels::ConvGeometry g;
    g.height = 9, g.width = 11, g.kernel = 1, g.stride = 2, g.padding = 0;
    g.out_height = 5, g.out_width = 6;
    const int64_t outputs = 19, even = 9;
    const at::Tensor x = torch::randn({g.height, g.width, C});
    const at::Tensor we = torch::randn({even, C}), wo = torch::randn({outputs - even, C});
    const at::Tensor wte = we.t().contiguous(), wto = wo.t().contiguous();
    const at::Tensor gy = torch::randn({g.out_height, g.out_width, outputs});
    at::Tensor out[2][4];
    for (int t = 0; t < 2; ++t) {
      const auto& table =
          t == 0 ? kernels::avx2::nhwc_kernels_f32() : kernels::portable::nhwc_kernels_f32();
      at::Tensor* o = out[t];
      o[0] = torch::empty_like(gy), o[1] = torch::empty_like(x);
      o[2] = torch::zeros_like(we), o[3] = torch::zeros_like(wo);
      table.reduce_forward(x.data_ptr<float>(), wte.data_ptr<float>(), wto.data_ptr<float>(),
                           o[0].data_ptr<float>(), C, outputs, even, g);
      table.reduce_backward(x.data_ptr<float>(), we.data_ptr<float>(), wo.data_ptr<float>(),
                            gy.data_ptr<float>(), o[1].data_ptr<float>(), o[2].data_ptr<float>(),
                            o[3].data_ptr<float>(), C, outputs, even, g);
    }
    for (int i = 0; i < 4; ++i)
      EXPECT_LE(relative_error(out[0][i], out[1][i]), 1e-5) << "C " << C << " output " << i;
  }
}

// The module's native backend in channels-last goes through the fused function (its output
// and gradients against LibTorch's backend are checked for every op in test_kernel_ops.cpp).
TEST(FactorizedReduceKernel, ModuleTakesTheNativePath) {
  FactorizedReduce native(8, 10, true, KernelBackend::kNative);
  FactorizedReduce reference(8, 10, true, KernelBackend::kTorch);
  const at::Tensor x = laid_out(torch::randn({2, 8, 6, 6}), true).requires_grad_(true);
  const at::Tensor y = native->forward(x);
  ASSERT_NE(y.grad_fn(), nullptr);
  // The batch norm's input comes from the native function.
  const auto& edges = y.grad_fn()->next_edges();
  ASSERT_FALSE(edges.empty());
  EXPECT_NE(edges[0].function->name().find("FactorizedReduceFunction"), std::string::npos)
      << edges[0].function->name();
  EXPECT_EQ(reference->forward(x).grad_fn()->next_edges()[0].function->name().find(
                "FactorizedReduceFunction"),
            std::string::npos);
}

// LibTorch's backend in channels-last: a sequence of shapes that made LibTorch 1.13's oneDNN
// stride-2 1x1 conv backward corrupt the heap (abort, or a hang) when it ran in channels-last.
TEST(FactorizedReduceKernel, LibTorchBackendSurvivesChannelsLastShapes) {
  torch::manual_seed(14);
  for (int64_t n : {1, 2, 3}) {
    for (int64_t c : {3, 5, 8, 16}) {
      for (int64_t h : {7, 8, 16}) {
        for (int64_t grid_outputs : {4, 8, 16}) {
          FactorizedReduce op(c, 2 * grid_outputs, false, KernelBackend::kTorch);
          const at::Tensor x = laid_out(torch::randn({n, c, h, h}), true).requires_grad_(true);
          const at::Tensor y = op->forward(x);
          (y * torch::randn(y.sizes())).sum().backward();
          expect_layout(y, true, reduce_name({n, c, h, h}, 2 * grid_outputs));
          ASSERT_TRUE(x.grad().defined());
        }
      }
    }
  }
}

TEST(FactorizedReduceKernel, RefusesBadInput) {
  const at::Tensor x = laid_out(torch::randn({1, 4, 4, 4}), true);
  EXPECT_THROW(native_factorized_reduce(x, torch::randn({2, 3, 1, 1}), torch::randn({2, 4, 1, 1})),
               Error);
  EXPECT_THROW(native_factorized_reduce(x.contiguous(), torch::randn({2, 4, 1, 1}),
                                        torch::randn({2, 4, 1, 1})),
               Error);
  EXPECT_THROW(native_factorized_reduce(x, torch::randn({2, 4, 1, 1}, torch::kDouble),
                                        torch::randn({2, 4, 1, 1})),
               Error);
  const at::Tensor wider = laid_out(torch::randn({1, 2, 4, 6}), true);
  try {
    native_factorized_reduce({x, wider}, torch::randn({2, 6, 1, 1}), torch::randn({2, 6, 1, 1}));
    ADD_FAILURE() << "parts of different widths were taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input parts of one dtype, batch, height and width"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(native_factorized_reduce(std::vector<at::Tensor>{}, torch::randn({2, 4, 1, 1}),
                                        torch::randn({2, 4, 1, 1})),
               Error);
}

}  // namespace
}  // namespace datanas
