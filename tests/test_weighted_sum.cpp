// The native mixture of a supernet edge (kernels/weighted_sum.h) against LibTorch's expression:
// output, value gradients and weight gradients in both layouts, finite differences in double,
// and the cases it must refuse; the fan-out of a state to its readers (kernels/fan_out.h)
// against autograd's own summing.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "kernel_checks.h"
#include "kernels/fan_out.h"
#include "kernels/weighted_sum.h"
#include "util/error.h"

namespace datanas {
namespace {
using namespace kernel_checks;

// sum_j w[index[j]] * values[j] the LibTorch way.
at::Tensor reference_sum(const std::vector<at::Tensor>& values, const at::Tensor& w,
                         const std::vector<int64_t>& index) {
  at::Tensor sum = w[index[0]] * values[0];
  for (size_t j = 1; j < values.size(); ++j) sum = sum + w[index[j]] * values[j];
  return sum;
}

struct Grads {
  at::Tensor y, gw;
  std::vector<at::Tensor> gv;
};

template <typename F>
Grads run(F f, const std::vector<at::Tensor>& values, const at::Tensor& w,
          const std::vector<int64_t>& index, const at::Tensor& up) {
  std::vector<at::Tensor> v;
  for (const auto& t : values) v.push_back(t.detach().clone().requires_grad_(true));
  at::Tensor wl = w.detach().clone().requires_grad_(true);
  at::Tensor y = f(v, wl, index);
  (y * up).sum().backward();
  Grads g{y.detach(), wl.grad(), {}};
  for (const auto& t : v) g.gv.push_back(t.grad());
  return g;
}

TEST(KernelWeightedSum, MatchesLibTorchInBothLayouts) {
  torch::manual_seed(11);
  for (bool nhwc : {false, true}) {
    for (const Shape& s : kShapes) {
      for (size_t count : {size_t{1}, size_t{3}, size_t{8}}) {
        std::vector<at::Tensor> values;
        std::vector<int64_t> index;
        for (size_t j = 0; j < count; ++j) {
          values.push_back(laid_out(torch::randn({s.n, s.c, s.h, s.w}), nhwc));
          index.push_back(static_cast<int64_t>((j * 3) % 8));  // 8 ops: a subset, reordered
        }
        if (count == 8)
          for (size_t j = 0; j < count; ++j) index[j] = static_cast<int64_t>(j);
        const at::Tensor w = torch::rand({8});
        const at::Tensor up = laid_out(torch::randn({s.n, s.c, s.h, s.w}), nhwc);
        const Grads native =
            run([](const std::vector<at::Tensor>& v, const at::Tensor& wl,
                   const std::vector<int64_t>& i) { return native_weighted_sum(v, wl, i); },
                values, w, index, up);
        const Grads torch_ = run(reference_sum, values, w, index, up);
        const std::string what = layout_name(nhwc) + std::to_string(count) + " terms " +
                                 std::to_string(s.c) + "x" + std::to_string(s.h);
        expect_layout(native.y, nhwc, what);
        EXPECT_LE(relative_error(native.y, torch_.y), 1e-5) << what;
        EXPECT_LE(relative_error(native.gw, torch_.gw), 1e-5) << what;
        for (size_t j = 0; j < count; ++j)
          EXPECT_LE(relative_error(native.gv[j], torch_.gv[j]), 1e-6) << what << " value " << j;
      }
    }
  }
}

TEST(KernelWeightedSum, FiniteDifferencesInDouble) {
  torch::manual_seed(12);
  for (bool nhwc : {false, true}) {
    const std::vector<int64_t> index = {1, 4, 6};
    std::vector<at::Tensor> values;
    for (int j = 0; j < 3; ++j)
      values.push_back(laid_out(torch::randn({2, 3, 4, 5}, torch::kDouble), nhwc));
    const at::Tensor w = torch::rand({8}, torch::kDouble);
    // The weights as the leaf checked here; the values enter linearly.
    expect_finite_differences(
        [&](const at::Tensor& wl, const std::vector<at::Tensor>& rest) {
          return native_weighted_sum(rest, wl, index);
        },
        w, values, layout_name(nhwc) + std::string("weighted sum"));
  }
}

TEST(KernelWeightedSum, RefusesWhatItCannotSum) {
  const at::Tensor a = torch::randn({2, 3, 4, 5});
  EXPECT_FALSE(can_weight_natively({}));
  EXPECT_FALSE(can_weight_natively({a, torch::randn({2, 3, 4, 6})}));                    // sizes
  EXPECT_FALSE(can_weight_natively({a, a.contiguous(at::MemoryFormat::ChannelsLast)}));  // layout
  EXPECT_FALSE(can_weight_natively({a, a.to(torch::kDouble)}));                          // dtype
  EXPECT_FALSE(can_weight_natively({a.transpose(2, 3)}));                                // strided
  EXPECT_TRUE(can_weight_natively({a, a * 2}));
  EXPECT_THROW(native_weighted_sum({a}, torch::rand({8}), {8}), Error);     // index out of range
  EXPECT_THROW(native_weighted_sum({a, a}, torch::rand({8}), {0}), Error);  // one index short
}

// Readers of a fanned-out x, each through its own alias: x's gradient is the sum of theirs, as
// when every reader takes x itself; unused aliases add nothing. 20 readers take more than one
// summing pass (kMaxWeightedTerms terms each).
TEST(KernelFanOut, GradientIsTheSumOfTheReadersGradients) {
  torch::manual_seed(13);
  for (auto dtype : {torch::kFloat, torch::kDouble}) {
    for (bool nhwc : {false, true}) {
      for (int64_t readers : {2, 5, 20}) {
        const at::Tensor x0 = laid_out(torch::randn({2, 9, 5, 7}, dtype), nhwc);
        std::vector<at::Tensor> ups;
        for (int64_t r = 0; r < readers; ++r) ups.push_back(torch::randn({2, 9, 5, 7}, dtype));
        // Reader r: sin(x) * up_r, r odd; x * up_r, r even; the last alias stays unused.
        const auto loss = [&](const std::function<at::Tensor(int64_t)>& read) {
          at::Tensor sum = at::zeros({}, dtype);
          for (int64_t r = 0; r + 1 < readers; ++r) {
            const at::Tensor in = read(r);
            sum = sum + ((r % 2 ? in.sin() : in) * ups[r]).sum();
          }
          return sum;
        };
        const at::Tensor x = x0.detach().requires_grad_(true);
        const std::vector<at::Tensor> aliases = native_fan_out(x, readers);
        ASSERT_EQ(static_cast<int64_t>(aliases.size()), readers);
        EXPECT_EQ(aliases[0].data_ptr(), x.data_ptr());  // an alias, not a copy
        loss([&](int64_t r) { return aliases[r]; }).backward();
        const at::Tensor plain = x0.detach().requires_grad_(true);
        loss([&](int64_t) { return plain; }).backward();
        const std::string what = layout_name(nhwc) + std::to_string(readers) + " readers " +
                                 (dtype == torch::kFloat ? "float" : "double");
        expect_layout(x.grad(), nhwc, what);
        EXPECT_LE(relative_error(x.grad(), plain.grad()), dtype == torch::kFloat ? 1e-6 : 1e-14)
            << what;
      }
    }
  }
}

TEST(KernelFanOut, RefusesWhatItCannotFanOut) {
  const at::Tensor x = torch::randn({2, 3, 4, 5});
  EXPECT_FALSE(can_fan_out(x));  // no gradient wanted
  EXPECT_FALSE(can_fan_out(torch::ones({2, 3}, torch::kLong)));
  EXPECT_FALSE(can_fan_out(x.transpose(2, 3).requires_grad_(true)));  // strided
  EXPECT_TRUE(can_fan_out(x.detach().requires_grad_(true)));
  EXPECT_THROW(native_fan_out(x, 2), Error);
  EXPECT_THROW(native_fan_out(x.detach().requires_grad_(true), 0), Error);
}

}  // namespace
}  // namespace datanas
