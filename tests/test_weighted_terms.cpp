// Ops whose output a supernet node's sum weighs before their batch norm is applied
// (kernels/fused_batch_norm.h's WeightedOutput, taken by nets/mixed_op.cpp): with the native
// weighted sum they give what their plain outputs weighed in the same sum give - the sum, the
// input, parameter and weight gradients, the running statistics - for every op that ends in a
// fused batch norm; central finite differences in double; and the maps the sum refuses.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "kernel_checks.h"
#include "kernels/weighted_sum.h"
#include "space/op_blocks.h"
#include "space/ops.h"
#include "util/error.h"
#include "util/memory_format.h"

namespace datanas {
namespace {
using namespace kernel_checks;

struct OpCase {
  std::string name;
  int64_t stride;
  bool mapped;  // whether the op leaves its batch norm to the sum
};

const std::vector<OpCase> kCases = {
    {"sep_conv_3x3", 1, true},  {"sep_conv_5x5", 2, true}, {"dil_conv_3x3", 1, true},
    {"dil_conv_5x5", 2, false},  // stride 2: the separate native ops, a plain output
    {"max_pool_3x3", 1, true},  {"avg_pool_3x3", 2, true}, {"max_pool_3x3", 2, true},
};

constexpr int64_t kOp = 3;     // the op's place in the weight row
constexpr int64_t kOther = 6;  // a plain value's place

torch::nn::AnyModule make_op(const OpCase& c, int64_t channels, bool affine) {
  torch::nn::AnyModule op =
      make_cnn_op(c.name, channels, c.stride, affine, /*pool_bn=*/true, KernelBackend::kNative);
  op.ptr()->train();
  set_memory_format(*op.ptr(), /*channels_last=*/true);
  return op;
}

kernels::WeightedOutput weighted_term(torch::nn::AnyModule& op, const at::Tensor& x,
                                      const kernels::OutputWeight& weight) {
  torch::nn::Module* m = op.ptr().get();
  if (auto* sep = m->as<SepConvImpl>()) return sep->forward_weighted(x, weight);
  if (auto* dil = m->as<DilConvImpl>()) return dil->forward_weighted(x, weight);
  return m->as<PoolImpl>()->forward_weighted(x, weight);
}

struct SumRun {
  at::Tensor sum, grad_x, grad_w;
  std::vector<at::Tensor> param_grads;
};

// sum = w[kOp] op(x) + w[kOther] other, backward with `up`; weighed: the op's term is left to
// the sum before its batch norm.
SumRun run_sum(torch::nn::AnyModule& op, const at::Tensor& x, const at::Tensor& w,
               const at::Tensor& other, const at::Tensor& up, bool weighed, bool expect_map,
               const std::string& what) {
  const at::Tensor xl = x.detach().clone().requires_grad_(true);
  const at::Tensor wl = w.detach().clone().requires_grad_(true);
  at::Tensor sum;
  if (weighed) {
    const kernels::WeightedOutput term = weighted_term(op, xl, {wl, kOp});
    EXPECT_EQ(term.map.defined(), expect_map) << what;
    sum = native_weighted_sum({term.z, other}, wl, {kOp, kOther}, {term.map, at::Tensor()});
  } else {
    sum = native_weighted_sum({op.forward(xl), other}, wl, {kOp, kOther});
  }
  (sum * up).sum().backward();
  SumRun r{sum.detach(), xl.grad(), wl.grad(), {}};
  for (const auto& p : op.ptr()->parameters()) r.param_grads.push_back(p.grad());
  return r;
}

TEST(WeightedTerms, MatchThePlainOutputsWeighedInTheSum) {
  for (const OpCase& c : kCases) {
    for (bool affine : {false, true}) {
      const std::string what =
          c.name + " stride " + std::to_string(c.stride) + (affine ? " affine" : "");
      torch::manual_seed(31);
      torch::nn::AnyModule plain = make_op(c, 8, affine), weighed = make_op(c, 8, affine);
      {
        at::NoGradGuard no_grad;
        const auto from = plain.ptr()->parameters(), to = weighed.ptr()->parameters();
        for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i].detach() + 0.1 * i);
        for (size_t i = 0; i < from.size(); ++i) from[i].copy_(to[i]);
      }
      const at::Tensor x = torch::randn({3, 8, 11, 9}).contiguous(at::MemoryFormat::ChannelsLast);
      const int64_t out_h = (11 + c.stride - 1) / c.stride, out_w = (9 + c.stride - 1) / c.stride;
      const at::Tensor other =
          torch::randn({3, 8, out_h, out_w}).contiguous(at::MemoryFormat::ChannelsLast);
      const at::Tensor up = torch::randn({3, 8, out_h, out_w});
      const at::Tensor w = torch::rand({8}) + 0.25;
      const SumRun a = run_sum(plain, x, w, other, up, false, false, what);
      const SumRun b = run_sum(weighed, x, w, other, up, true, c.mapped, what);
      EXPECT_LE(relative_error(b.sum, a.sum), 1e-6) << what << " sum";
      EXPECT_LE(relative_error(b.grad_x, a.grad_x), 1e-5) << what << " input gradient";
      EXPECT_LE(relative_error(b.grad_w, a.grad_w), 1e-5) << what << " weight gradient";
      EXPECT_NE(b.grad_w[kOp].item<float>(), 0.0f) << what;
      ASSERT_EQ(a.param_grads.size(), b.param_grads.size());
      for (size_t i = 0; i < a.param_grads.size(); ++i)
        EXPECT_LE(relative_error(b.param_grads[i], a.param_grads[i]), 1e-5)
            << what << " parameter " << i;
      expect_buffers_close(*weighed.ptr(), *plain.ptr(), what);
    }
  }
}

// Without autograd an op gives its plain output, which a sum takes without a map.
TEST(WeightedTerms, PlainWithoutAutograd) {
  torch::nn::AnyModule op = make_op(kCases[0], 8, false);
  const at::Tensor x = torch::randn({2, 8, 6, 6}).contiguous(at::MemoryFormat::ChannelsLast);
  at::NoGradGuard no_grad;
  EXPECT_FALSE(weighted_term(op, x, {torch::rand({8}), kOp}).map.defined());
}

TEST(WeightedTerms, FiniteDifferencesInDouble) {
  for (const OpCase& c : {kCases[2], kCases[5]}) {
    torch::manual_seed(32);
    torch::nn::AnyModule op = make_op(c, 4, /*affine=*/true);
    op.ptr()->to(torch::kDouble);
    const at::Tensor x =
        torch::randn({2, 4, 6, 5}, torch::kDouble).contiguous(at::MemoryFormat::ChannelsLast);
    const int64_t out_h = (6 + c.stride - 1) / c.stride, out_w = (5 + c.stride - 1) / c.stride;
    const at::Tensor other = torch::randn({2, 4, out_h, out_w}, torch::kDouble)
                                 .contiguous(at::MemoryFormat::ChannelsLast);
    expect_finite_differences(
        [&](const at::Tensor& xl, const std::vector<at::Tensor>& rest) {
          const kernels::WeightedOutput term = weighted_term(op, xl, {rest[0], kOp});
          EXPECT_TRUE(term.map.defined()) << c.name;
          return native_weighted_sum({term.z, other}, rest[0], {kOp, kOther},
                                     {term.map, at::Tensor()});
        },
        x, {torch::rand({8}, torch::kDouble) + 0.25}, c.name + " weighed term");
  }
}

TEST(WeightedTerms, SumRefusesBadMaps) {
  const at::Tensor nhwc = torch::randn({2, 3, 4, 5}).contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor nchw = torch::randn({2, 3, 4, 5});
  const at::Tensor w = torch::rand({8}), map = torch::randn({2, 3});
  EXPECT_NO_THROW(native_weighted_sum({nhwc}, w, {0}, {map}));
  EXPECT_THROW(native_weighted_sum({nchw}, w, {0}, {map}), Error);           // not channels-last
  EXPECT_THROW(native_weighted_sum({nhwc, nhwc}, w, {0, 1}, {map}), Error);  // one map short
  EXPECT_THROW(native_weighted_sum({nhwc}, w, {0}, {torch::randn({2, 4})}), Error);    // channels
  EXPECT_THROW(native_weighted_sum({nhwc}, w, {0}, {map.to(torch::kDouble)}), Error);  // dtype
}

}  // namespace
}  // namespace datanas
