// The fused ReLU -> depthwise -> pointwise -> batch norm block (kernels/dw_pw_bn.h) against
// LibTorch's ops: output, every gradient and the running statistics in float for the cell
// space's geometries, central finite differences in double, the same numbers on 1 and 2
// threads, the modules taking it, an input map (the batch norm of the block before), and bad
// input refused.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "kernel_checks.h"
#include "kernels/dw_pw_bn.h"
#include "space/op_blocks.h"
#include "util/error.h"

namespace datanas {
namespace {
using namespace kernel_checks;

struct Conv {
  int64_t kernel, stride, dilation;
  int64_t padding() const { return dilation * (kernel - 1) / 2; }
};

struct Case {
  Shape shape;
  Conv conv;
  int64_t outputs;
  bool affine;
  std::string name() const {
    return std::to_string(shape.n) + "x" + std::to_string(shape.c) + "x" + std::to_string(shape.h) +
           "x" + std::to_string(shape.w) + " k" + std::to_string(conv.kernel) + " s" +
           std::to_string(conv.stride) + " d" + std::to_string(conv.dilation) + " -> " +
           std::to_string(outputs) + (affine ? " affine" : "");
  }
};

// leaves: {depthwise weight, pointwise weight} or those and {bn weight, bn bias}.
at::Tensor fused(const at::Tensor& x, const std::vector<at::Tensor>& l, const Conv& c,
                 const at::Tensor& rm, const at::Tensor& rv) {
  const bool affine = l.size() == 4;
  return native_dw_pw_bn_train(x, l[0], l[1], {c.stride, c.padding(), c.dilation, true},
                               affine ? l[2] : at::Tensor(), affine ? l[3] : at::Tensor(), rm, rv,
                               0.1, 1e-5);
}

at::Tensor reference(const at::Tensor& x, const std::vector<at::Tensor>& l, const Conv& c,
                     const at::Tensor& rm, const at::Tensor& rv) {
  const bool affine = l.size() == 4;
  const at::Tensor u =
      at::conv2d(at::relu(x.contiguous()), l[0], {}, c.stride, c.padding(), c.dilation, x.size(1));
  return at::batch_norm(at::conv2d(u, l[1]), affine ? l[2] : at::Tensor(),
                        affine ? l[3] : at::Tensor(), rm, rv, true, 0.1, 1e-5, false);
}

std::vector<at::Tensor> leaves_for(const Case& c, at::ScalarType dtype) {
  const auto o = torch::TensorOptions().dtype(dtype);
  const int64_t k = c.conv.kernel;
  std::vector<at::Tensor> l = {torch::randn({c.shape.c, 1, k, k}, o),
                               torch::randn({c.outputs, c.shape.c, 1, 1}, o)};
  if (c.affine) {
    l.push_back(torch::randn({c.outputs}, o));
    l.push_back(torch::randn({c.outputs}, o));
  }
  return l;
}

// Every depthwise geometry of the cell space (sep/dil convs, stride 1 and 2); odd sizes, batch 1,
// rows shorter and longer than the 8-output blocks of the stride-1 kernels, channel counts off
// the vector width and of one or more whole vectors, more outputs than inputs and fewer.
std::vector<Case> cases() {
  std::vector<Case> out;
  std::vector<Shape> shapes = kShapes;
  shapes.push_back({2, 16, 11, 21});
  shapes.push_back({1, 32, 9, 10});  // two channel blocks under AVX-512
  const std::vector<Conv> convs = {{3, 1, 1}, {5, 1, 1}, {3, 1, 2},
                                   {5, 1, 2}, {3, 2, 1}, {5, 2, 2}};
  for (const Shape& s : shapes) {
    for (const Conv& c : convs) {
      for (int64_t outputs : {s.c, int64_t{7}}) out.push_back({s, c, outputs, outputs == 7});
    }
  }
  return out;
}

TEST(DwPwBN, MatchesLibTorchAndUpdatesRunningStatistics) {
  torch::manual_seed(31);
  for (const Case& c : cases()) {
    const Shape& s = c.shape;
    const at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}) + 0.3, true);
    const std::vector<at::Tensor> leaves = leaves_for(c, at::kFloat);
    at::Tensor rm = torch::randn({c.outputs}), rv = torch::rand({c.outputs}) + 0.5;
    at::Tensor rm_ref = rm.clone(), rv_ref = rv.clone();
    const at::Tensor probe = reference(x, leaves, c.conv, at::Tensor(), at::Tensor());
    const at::Tensor up = torch::randn(probe.sizes());
    const auto native = value_and_grads(
        [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return fused(in, l, c.conv, rm, rv);
        },
        x, leaves, up);
    const auto expected = value_and_grads(
        [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return reference(in, l, c.conv, rm_ref, rv_ref);
        },
        x, leaves, up);
    expect_close(native, expected, c.name());
    expect_layout(native[0], true, c.name());
    EXPECT_LE(relative_error(rm, rm_ref), 1e-5) << c.name();
    EXPECT_LE(relative_error(rv, rv_ref), 1e-5) << c.name();
  }
}

TEST(DwPwBN, FiniteDifferencesInDouble) {
  torch::manual_seed(32);
  // Rows of 10 take the 8-output sliding kernels and a remainder.
  for (const Case& c :
       {Case{{2, 3, 5, 6}, {3, 1, 1}, 4, true}, Case{{1, 2, 6, 5}, {5, 1, 2}, 2, false},
        Case{{2, 2, 5, 5}, {3, 2, 1}, 3, true}, Case{{1, 2, 3, 10}, {5, 1, 1}, 3, false}}) {
    const Shape& s = c.shape;
    const at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}, torch::kDouble), true);
    expect_finite_differences(
        [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return fused(in, l, c.conv, at::Tensor(), at::Tensor());
        },
        x, leaves_for(c, at::kDouble), c.name());
  }
}

// Weight gradients are per-sample partials summed in sample order: bit for bit the same on any
// number of threads.
TEST(DwPwBN, SameNumbersOnOneAndTwoThreads) {
  torch::manual_seed(33);
  for (const Conv& conv : {Conv{3, 1, 1}, Conv{5, 2, 2}}) {
    const Case c{{8, 16, 12, 12}, conv, 24, true};
    const at::Tensor x = laid_out(torch::randn({8, 16, 12, 12}), true);
    const std::vector<at::Tensor> leaves = leaves_for(c, at::kFloat);
    const int64_t out = conv.stride == 1 ? 12 : 6;
    const at::Tensor up = torch::randn({8, 24, out, out});
    expect_same_on_one_and_two_threads(
        [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return fused(in, l, conv, at::Tensor(), at::Tensor());
        },
        x, leaves, up, c.name());
  }
}

// Dil and sep convs take the fused function in channels-last with autograd where the depthwise
// conv has stride 1 (NCHW and strided convs keep the separate ops), and an architecture step's
// backward, which wants no weight gradients, gives the same input gradient as a full one.
TEST(DwPwBN, ModulesTakeItInChannelsLast) {
  torch::manual_seed(34);
  DilConv dil(6, 10, 3, 1, 2, 2, true, KernelBackend::kNative);
  SepConv sep(6, 10, 5, 2, 2, false, KernelBackend::kNative);
  const at::Tensor x = laid_out(torch::randn({3, 6, 9, 9}), true);
  const at::Tensor xg = x.clone().requires_grad_(true);
  EXPECT_NE(grad_fn_name(dil(xg)).find("DwPwBNFunction"), std::string::npos);
  EXPECT_NE(grad_fn_name(sep(xg)).find("DwPwBNFunction"), std::string::npos);
  EXPECT_EQ(grad_fn_name(dil(xg.contiguous())).find("DwPwBNFunction"), std::string::npos);
  DilConv strided(6, 10, 3, 2, 2, 2, true, KernelBackend::kNative);
  EXPECT_EQ(grad_fn_name(strided(xg)).find("DwPwBNFunction"), std::string::npos);

  const at::Tensor up = torch::randn({3, 10, 5, 5});
  const at::Tensor full = xg.clone().detach().requires_grad_(true);
  (sep(full) * up).sum().backward();
  const at::Tensor input_only = xg.clone().detach().requires_grad_(true);
  const at::Tensor grad = torch::autograd::grad({(sep(input_only) * up).sum()}, {input_only})[0];
  EXPECT_LE(relative_error(grad, full.grad()), 1e-6);
}

// The batch norm of the block before left to this one (a sep conv's first block's): the block on
// x with that map equals the block on the mapped x, and x's gradient the mapped x's, with the
// batch norm's gradients and running statistics, in float and double (the map applied while
// padding, the ReLU's mask taken from the padded plane, in channel blocks at C = 16).
TEST(DwPwBN, InputMapEqualsTheMappedInput) {
  torch::manual_seed(35);
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    const auto o = torch::TensorOptions().dtype(dtype);
    const double tolerance = dtype == at::kFloat ? 1e-5 : 1e-10;
    for (const Conv& conv : {Conv{3, 1, 1}, Conv{5, 1, 2}}) {
      for (int64_t C : {int64_t{6}, int64_t{16}}) {
        const std::string what = std::string(dtype == at::kFloat ? "float" : "double") + " C " +
                                 std::to_string(C) + " k" + std::to_string(conv.kernel);
        const at::Tensor x = laid_out(torch::randn({3, C, 9, 10}, o), true);
        const at::Tensor map = at::stack({torch::rand({C}, o) + 0.5, torch::randn({C}, o)});
        const at::Tensor mapped =
            laid_out(x * map[0].view({1, C, 1, 1}) + map[1].view({1, C, 1, 1}), true);
        torch::nn::BatchNorm2d bn_a(7), bn_b(7);
        bn_a->to(dtype);
        bn_b->to(dtype);
        const at::Tensor dw = torch::randn({C, 1, conv.kernel, conv.kernel}, o).requires_grad_();
        const at::Tensor pw = torch::randn({7, C, 1, 1}, o).requires_grad_();
        const DepthwiseConvOptions options{conv.stride, conv.padding(), conv.dilation, true};
        const at::Tensor xa = x.clone().requires_grad_(true);
        const at::Tensor xb = mapped.detach().clone().requires_grad_(true);
        const at::Tensor ya = dw_pw_batch_norm_weighted(*bn_a, xa, dw, pw, options, {}, map).z;
        const at::Tensor yb = dw_pw_batch_norm(*bn_b, xb, dw, pw, options);
        const at::Tensor up = torch::randn(ya.sizes(), o);
        const auto ga = torch::autograd::grad({(ya * up).sum()}, {xa, dw, pw, bn_a->weight});
        const auto gb = torch::autograd::grad({(yb * up).sum()}, {xb, dw, pw, bn_b->weight});
        EXPECT_LE(relative_error(ya, yb), tolerance) << what;
        for (size_t i = 0; i < ga.size(); ++i)
          EXPECT_LE(relative_error(ga[i], gb[i]), tolerance) << what << " gradient " << i;
        EXPECT_LE(relative_error(bn_a->running_var, bn_b->running_var), tolerance) << what;
      }
    }
  }
  torch::nn::BatchNorm2d bn(6);
  const at::Tensor x = laid_out(torch::randn({2, 4, 5, 5}), true).requires_grad_(true);
  const at::Tensor dw = torch::randn({4, 1, 3, 3}), pw = torch::randn({6, 4, 1, 1});
  EXPECT_THROW(dw_pw_batch_norm_weighted(*bn, x, dw, pw, {1, 1, 1, true}, {}, torch::ones({2, 5})),
               Error);  // not one value per channel
  EXPECT_THROW(dw_pw_batch_norm_weighted(*bn, x, dw, pw, {1, 2, 1, true}, {}, torch::ones({2, 4})),
               Error);  // the size not kept: no gather form
  EXPECT_THROW(dw_pw_batch_norm_weighted(*bn, x, dw, pw, {2, 1, 1, true}, {}, torch::ones({2, 4})),
               Error);  // stride 2: not the fused function
}

// A batch norm without affine parameters normalises in place and keeps its output for the
// backward instead of z (kernels/fused_batch_norm.h), for the fused block and the 1x1 conv: an
// in-place change of that output is then refused by autograd, not a wrong gradient; with affine
// parameters z is kept and the output is the caller's to change.
TEST(DwPwBN, KeptOutputRefusesInPlaceChanges) {
  torch::manual_seed(36);
  const at::Tensor x = laid_out(torch::randn({3, 6, 8, 8}), true);
  for (bool affine : {false, true}) {
    DilConv dil(6, 6, 3, 1, 1, 1, affine, KernelBackend::kNative);
    ReLUConvBN conv(6, 6, 1, 1, 0, affine, KernelBackend::kNative);
    for (torch::nn::AnyModule op : {torch::nn::AnyModule(dil), torch::nn::AnyModule(conv)}) {
      const at::Tensor xg = x.clone().requires_grad_(true);
      at::Tensor y = op.forward<at::Tensor>(xg);
      y.mul_(2.0);
      if (affine) {
        EXPECT_NO_THROW(y.sum().backward());
      } else {
        EXPECT_THROW(y.sum().backward(), c10::Error);
      }
    }
  }
}

TEST(DwPwBN, RefusesWhatItCannotRun) {
  const at::Tensor x = laid_out(torch::randn({2, 4, 5, 5}), true);
  const at::Tensor dw = torch::randn({4, 1, 3, 3}), pw = torch::randn({6, 4, 1, 1});
  const at::Tensor none;
  const DepthwiseConvOptions o{1, 1, 1, true};
  auto run = [&](const at::Tensor& in, const at::Tensor& d, const at::Tensor& p,
                 const at::Tensor& bn_weight) {
    return native_dw_pw_bn_train(in, d, p, o, bn_weight, none, none, none, 0.1, 1e-5);
  };
  EXPECT_THROW(run(x.contiguous(), dw, pw, none), Error);             // NCHW
  EXPECT_THROW(run(x, torch::randn({3, 1, 3, 3}), pw, none), Error);  // depthwise channels
  EXPECT_THROW(run(x, dw, torch::randn({6, 5, 1, 1}), none), Error);  // pointwise inputs
  EXPECT_THROW(run(x, dw, pw.to(torch::kDouble), none), Error);       // dtype
  EXPECT_THROW(run(x, dw, pw, torch::ones({4})), Error);              // batch-norm weight size
}

}  // namespace
}  // namespace datanas
