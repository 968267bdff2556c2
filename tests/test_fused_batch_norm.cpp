// The native ops fused with the batch norm after them, pointwise conv + BN
// (kernels/pointwise_conv_bn.h) and 3x3 pool + BN (kernels/pool_bn.h), against LibTorch's ops:
// outputs, every gradient and the running statistics in float, central finite differences in
// double, the same numbers on 1 and 2 threads, the modules taking them, and the path without
// autograd.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "kernel_checks.h"
#include "kernels/nhwc_kernels.h"
#include "kernels/pointwise_conv_bn.h"
#include "kernels/pool_bn.h"
#include "space/op_blocks.h"
#include "util/error.h"

namespace datanas {
namespace {
using namespace kernel_checks;

struct Case {
  Shape shape;
  int64_t outputs;
  bool relu, affine;
  std::string name() const {
    return std::to_string(shape.n) + "x" + std::to_string(shape.c) + "x" + std::to_string(shape.h) +
           "x" + std::to_string(shape.w) + " -> " + std::to_string(outputs) +
           (relu ? " relu" : "") + (affine ? " affine" : "");
  }
};

// leaves: {conv weight} or {conv weight, bn weight, bn bias}.
at::Tensor fused(const at::Tensor& x, const std::vector<at::Tensor>& l, const at::Tensor& rm,
                 const at::Tensor& rv, bool relu) {
  const bool affine = l.size() == 3;
  return native_pointwise_conv_bn_train(x, l[0], affine ? l[1] : at::Tensor(),
                                        affine ? l[2] : at::Tensor(), rm, rv, 0.1, 1e-5, relu);
}

at::Tensor reference(const at::Tensor& x, const std::vector<at::Tensor>& l, const at::Tensor& rm,
                     const at::Tensor& rv, bool relu) {
  const bool affine = l.size() == 3;
  const at::Tensor in = relu ? at::relu(x.contiguous()) : x.contiguous();
  return at::batch_norm(at::conv2d(in, l[0]), affine ? l[1] : at::Tensor(),
                        affine ? l[2] : at::Tensor(), rm, rv, true, 0.1, 1e-5, false);
}

std::vector<at::Tensor> leaves_for(const Case& c, at::ScalarType dtype) {
  const auto o = torch::TensorOptions().dtype(dtype);
  std::vector<at::Tensor> l = {torch::randn({c.outputs, c.shape.c, 1, 1}, o)};
  if (c.affine) {
    l.push_back(torch::randn({c.outputs}, o));
    l.push_back(torch::randn({c.outputs}, o));
  }
  return l;
}

// Odd sizes, batch 1, a single row, channel counts off the vector width, more outputs than
// inputs and fewer; inputs offset from 0 so that the moments' shift matters.
std::vector<Case> cases() {
  std::vector<Case> out;
  std::vector<Shape> shapes = kShapes;
  shapes.push_back({1, 16, 1, 3});
  shapes.push_back({4, 40, 17, 17});  // more than one run of pixels per sample
  for (const Shape& s : shapes)
    for (int64_t outputs : {7, 16, 34})
      for (bool relu : {false, true}) out.push_back({s, outputs, relu, outputs != 16});
  return out;
}

TEST(PointwiseConvBN, MatchesLibTorchAndUpdatesRunningStatistics) {
  torch::manual_seed(21);
  for (const Case& c : cases()) {
    const Shape& s = c.shape;
    const at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}) + 0.5, true);
    const std::vector<at::Tensor> leaves = leaves_for(c, at::kFloat);
    at::Tensor rm = torch::randn({c.outputs}), rv = torch::rand({c.outputs}) + 0.5;
    at::Tensor rm_ref = rm.clone(), rv_ref = rv.clone();
    const at::Tensor up = torch::randn({s.n, c.outputs, s.h, s.w});
    const auto native = value_and_grads(
        [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return fused(in, l, rm, rv, c.relu);
        },
        x, leaves, up);
    const auto expected = value_and_grads(
        [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return reference(in, l, rm_ref, rv_ref, c.relu);
        },
        x, leaves, up);
    expect_close(native, expected, c.name());
    expect_layout(native[0], true, c.name());
    EXPECT_LE(relative_error(rm, rm_ref), 1e-5) << c.name();
    EXPECT_LE(relative_error(rv, rv_ref), 1e-5) << c.name();
  }
}

// An input gradient of kernels::kStreamBytes or more is written with streaming stores: two such
// cases (8 MiB of x), through the ReLU gate, against LibTorch; the second one vector of 16
// inputs to 16 outputs, which AVX-512 makes with its weights held in registers.
TEST(PointwiseConvBN, LargeInputGradientsMatchLibTorch) {
  torch::manual_seed(24);
  for (const Case& c :
       {Case{{8, 64, 64, 64}, 16, true, false}, Case{{32, 16, 64, 64}, 16, true, false}}) {
    const Shape& s = c.shape;
    const at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}) + 0.2, true);
    ASSERT_GE(x.nbytes(), static_cast<size_t>(kernels::kStreamBytes));
    const std::vector<at::Tensor> leaves = leaves_for(c, at::kFloat);
    const at::Tensor up = torch::randn({s.n, c.outputs, s.h, s.w});
    const auto native = value_and_grads(
        [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return fused(in, l, at::Tensor(), at::Tensor(), true);
        },
        x, leaves, up);
    const auto expected = value_and_grads(
        [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return reference(in, l, at::Tensor(), at::Tensor(), true);
        },
        x, leaves, up);
    expect_close(native, expected, c.name());
  }
}

TEST(PointwiseConvBN, FiniteDifferencesInDouble) {
  torch::manual_seed(22);
  for (const Case& c : {Case{{2, 3, 3, 4}, 5, true, true}, Case{{1, 4, 2, 3}, 3, false, false}}) {
    const Shape& s = c.shape;
    const at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}, torch::kDouble), true);
    expect_finite_differences(
        [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return fused(in, l, at::Tensor(), at::Tensor(), c.relu);
        },
        x, leaves_for(c, at::kDouble), c.name());
  }
}

// Weight gradients are per-sample partials summed in sample order: bit for bit the same on any
// number of threads.
TEST(PointwiseConvBN, SameNumbersOnOneAndTwoThreads) {
  torch::manual_seed(23);
  const Case c{{8, 16, 12, 12}, 24, true, true};
  const at::Tensor x = laid_out(torch::randn({8, 16, 12, 12}), true);
  const std::vector<at::Tensor> leaves = leaves_for(c, at::kFloat);
  const at::Tensor up = torch::randn({8, 24, 12, 12});
  expect_same_on_one_and_two_threads(
      [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
        return fused(in, l, at::Tensor(), at::Tensor(), true);
      },
      x, leaves, up, c.name());
}

// The 1x1 preprocessing takes the fused function in channels-last (NCHW keeps the separate ops);
// without autograd the result and the running statistics are those of the autograd path.
TEST(PointwiseConvBN, ModulesTakeItInChannelsLast) {
  torch::manual_seed(24);
  ReLUConvBN pre(6, 10, 1, 1, 0, false, KernelBackend::kNative);
  const at::Tensor x = laid_out(torch::randn({3, 6, 9, 9}), true).requires_grad_(true);
  EXPECT_NE(grad_fn_name(pre(x)).find("PointwiseConvBNFunction"), std::string::npos);
  EXPECT_EQ(grad_fn_name(pre(x.contiguous())).find("PointwiseConvBNFunction"), std::string::npos);

  ReLUConvBN with_grad(6, 10, 1, 1, 0, true, KernelBackend::kNative);
  ReLUConvBN without_grad(6, 10, 1, 1, 0, true, KernelBackend::kNative);
  for (auto* m : {&with_grad, &without_grad}) {
    torch::manual_seed(25);
    for (auto& p : (*m)->parameters()) p.data().normal_();
  }
  const at::Tensor y = with_grad(x);
  at::Tensor y_no_grad;
  {
    torch::NoGradGuard no_grad;
    y_no_grad = without_grad(x);
  }
  EXPECT_TRUE(at::equal(y.detach(), y_no_grad));
  expect_buffers_close(*without_grad, *with_grad, "no-grad preprocessing");
}

TEST(PointwiseConvBN, RefusesWhatItCannotRun) {
  const at::Tensor x = laid_out(torch::randn({2, 4, 3, 3}), true);
  const at::Tensor w = torch::randn({5, 4, 1, 1});
  const at::Tensor none;
  EXPECT_THROW(
      native_pointwise_conv_bn_train(x.contiguous(), w, none, none, none, none, 0.1, 1e-5, false),
      Error);  // NCHW
  EXPECT_THROW(native_pointwise_conv_bn_train(x, torch::randn({5, 3, 1, 1}), none, none, none, none,
                                              0.1, 1e-5, false),
               Error);  // inputs do not match
  EXPECT_THROW(native_pointwise_conv_bn_train(x, w.to(torch::kDouble), none, none, none, none, 0.1,
                                              1e-5, false),
               Error);  // dtype
  EXPECT_THROW(
      native_pointwise_conv_bn_train(x, w, torch::ones({4}), none, none, none, 0.1, 1e-5, false),
      Error);  // batch-norm weight of the wrong size
}

at::Tensor pool_reference(const at::Tensor& x, int64_t stride, bool max,
                          const std::vector<at::Tensor>& l, const at::Tensor& rm,
                          const at::Tensor& rv) {
  const at::Tensor in = x.contiguous();
  const at::Tensor pooled = max ? at::max_pool2d(in, {3, 3}, {stride, stride}, {1, 1})
                                : at::avg_pool2d(in, {3, 3}, {stride, stride}, {1, 1}, false,
                                                 /*count_include_pad=*/false);
  const bool affine = !l.empty();
  return at::batch_norm(pooled, affine ? l[0] : at::Tensor(), affine ? l[1] : at::Tensor(), rm, rv,
                        true, 0.1, 1e-5, false);
}

at::Tensor pool_fused(const at::Tensor& x, int64_t stride, bool max,
                      const std::vector<at::Tensor>& l, const at::Tensor& rm,
                      const at::Tensor& rv) {
  const bool affine = !l.empty();
  return native_pool_bn_train(x, stride, max, affine ? l[0] : at::Tensor(),
                              affine ? l[1] : at::Tensor(), rm, rv, 0.1, 1e-5);
}

// Both pools and strides, ties (the gradient goes to the first maximum), affine on and off.
TEST(PoolBN, MatchesLibTorchAndUpdatesRunningStatistics) {
  torch::manual_seed(26);
  // Not a single row: the maxima of three values are often equal, and a batch norm over values
  // that nearly agree magnifies float rounding past any fixed tolerance.
  for (const Shape& s : kShapes) {
    for (bool max : {true, false}) {
      for (int64_t stride : {1, 2}) {
        for (bool ties : {false, true}) {
          at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}) + 0.5, true);
          if (ties) x = laid_out(at::round(x * 2), true);
          const bool affine = ties;
          std::vector<at::Tensor> leaves;
          if (affine) leaves = {torch::randn({s.c}), torch::randn({s.c})};
          at::Tensor rm = torch::randn({s.c}), rv = torch::rand({s.c}) + 0.5;
          at::Tensor rm_ref = rm.clone(), rv_ref = rv.clone();
          const at::Tensor probe = pool_reference(x, stride, max, leaves, at::Tensor(), {});
          const at::Tensor up = torch::randn(probe.sizes());
          const std::string what = Case{s, s.c, false, affine}.name() + (max ? " max" : " avg") +
                                   " s" + std::to_string(stride) + (ties ? " ties" : "");
          const auto native = value_and_grads(
              [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
                return pool_fused(in, stride, max, l, rm, rv);
              },
              x, leaves, up);
          const auto expected = value_and_grads(
              [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
                return pool_reference(in, stride, max, l, rm_ref, rv_ref);
              },
              x, leaves, up);
          expect_close(native, expected, what);
          expect_layout(native[0], true, what);
          EXPECT_LE(relative_error(rm, rm_ref), 1e-5) << what;
          EXPECT_LE(relative_error(rv, rv_ref), 1e-5) << what;
        }
      }
    }
  }
}

TEST(PoolBN, FiniteDifferencesInDouble) {
  torch::manual_seed(27);
  for (bool max : {true, false}) {
    const at::Tensor x = laid_out(torch::randn({2, 3, 4, 5}, torch::kDouble), true);
    const std::vector<at::Tensor> leaves = {torch::randn({3}, torch::kDouble),
                                            torch::randn({3}, torch::kDouble)};
    expect_finite_differences(
        [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return pool_fused(in, 1, max, l, at::Tensor(), at::Tensor());
        },
        x, leaves, max ? "max" : "avg");
  }
}

TEST(PoolBN, SameNumbersOnOneAndTwoThreads) {
  torch::manual_seed(28);
  const at::Tensor x = laid_out(torch::randn({8, 16, 12, 12}), true);
  const at::Tensor up = torch::randn({8, 16, 12, 12});
  expect_same_on_one_and_two_threads(
      [&](const at::Tensor& in, const std::vector<at::Tensor>&) {
        return pool_fused(in, 1, true, {}, at::Tensor(), at::Tensor());
      },
      x, {}, up, "max pool");
}

// The supernet's pools (with BN) take the fused function in channels-last, and without autograd
// give the same output and running statistics.
TEST(PoolBN, ModulesTakeItInChannelsLast) {
  for (bool max : {true, false}) {
    Pool with_grad(max, 6, 1, true, KernelBackend::kNative);
    Pool without_grad(max, 6, 1, true, KernelBackend::kNative);
    const at::Tensor x = laid_out(torch::randn({3, 6, 9, 9}), true).requires_grad_(true);
    const at::Tensor y = with_grad(x);
    EXPECT_NE(grad_fn_name(y).find("PoolBNFunction"), std::string::npos);
    EXPECT_EQ(grad_fn_name(with_grad(x.contiguous())).find("PoolBNFunction"), std::string::npos);
    at::Tensor y_no_grad;
    {
      torch::NoGradGuard no_grad;
      y_no_grad = without_grad(x);
      without_grad(x.contiguous());  // counted like the NCHW call above
    }
    EXPECT_TRUE(at::equal(y.detach(), y_no_grad));
    expect_buffers_close(*without_grad, *with_grad, max ? "max" : "avg");
  }
}

TEST(PoolBN, RefusesWhatItCannotRun) {
  const at::Tensor none;
  EXPECT_THROW(
      native_pool_bn_train(torch::randn({2, 4, 3, 3}), 1, true, none, none, none, none, 0.1, 1e-5),
      Error);  // NCHW
  EXPECT_THROW(native_pool_bn_train(laid_out(torch::randn({2, 4, 3, 3}), true), 1, true,
                                    torch::ones({3}), none, none, none, 0.1, 1e-5),
               Error);  // batch-norm weight of the wrong size
}

}  // namespace
}  // namespace datanas
