// Shared checks of the native-kernel tests: relative error, the random test shapes, values
// and gradients of a function, and central finite differences in double.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <vector>

namespace datanas::kernel_checks {

// max |a - b| / max |b|: 0 when equal.
inline double relative_error(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  const double scale = std::max(b.abs().max().item<double>(), 1e-30);
  return (a - b).abs().max().item<double>() / scale;
}

struct Shape {
  int64_t n, c, h, w;
};
inline const std::vector<Shape> kShapes = {
    {1, 3, 7, 9}, {2, 5, 8, 8}, {3, 11, 13, 6}, {2, 9, 32, 17}};

// Runs f on x (and extra leaves), backprops a random upstream gradient, returns
// {y, grad x, grads of extras...}.
template <typename F>
std::vector<at::Tensor> value_and_grads(F f, const at::Tensor& x, std::vector<at::Tensor> leaves,
                                        const at::Tensor& upstream) {
  at::Tensor xl = x.detach().clone().requires_grad_(true);
  for (auto& l : leaves) l = l.detach().clone().requires_grad_(true);
  at::Tensor y = f(xl, leaves);
  (y * upstream).sum().backward();
  std::vector<at::Tensor> out = {y.detach(), xl.grad()};
  for (auto& l : leaves) out.push_back(l.grad());
  return out;
}

inline void expect_close(const std::vector<at::Tensor>& native,
                         const std::vector<at::Tensor>& torch_, const std::string& what,
                         double tolerance = 1e-5) {
  ASSERT_EQ(native.size(), torch_.size());
  const char* names[] = {"output", "grad input", "grad weight", "grad bias"};
  for (size_t i = 0; i < native.size(); ++i) {
    ASSERT_TRUE(native[i].defined()) << what << " " << names[i];
    EXPECT_LE(relative_error(native[i], torch_[i]), tolerance) << what << " " << names[i];
  }
}

// Central differences of sum(f(x, leaves) * up) against the analytic gradients, in double.
template <typename F>
void expect_finite_differences(F f, const at::Tensor& x, const std::vector<at::Tensor>& leaves,
                               const std::string& what) {
  std::vector<at::Tensor> inputs = {x.detach().clone()};
  for (const auto& l : leaves) inputs.push_back(l.detach().clone());
  auto loss = [&](const at::Tensor& up) {
    std::vector<at::Tensor> rest(inputs.begin() + 1, inputs.end());
    const at::Tensor out = f(inputs[0], rest);
    return (out * up).sum().item<double>();
  };
  std::vector<at::Tensor> rest(inputs.begin() + 1, inputs.end());
  const at::Tensor shape_probe = f(inputs[0], rest);
  const at::Tensor up = torch::randn(shape_probe.sizes(), torch::kDouble);
  const std::vector<at::Tensor> analytic = value_and_grads(f, inputs[0], rest, up);
  const double h = 1e-6;
  for (size_t t = 0; t < inputs.size(); ++t) {
    double* data = inputs[t].data_ptr<double>();
    // Perturbed in memory order, so the analytic gradient is read in the input's layout.
    const at::Tensor grad_in_layout = analytic[t + 1].contiguous(inputs[t].suggest_memory_format());
    const double* grad = grad_in_layout.data_ptr<double>();
    for (int64_t e = 0; e < inputs[t].numel(); ++e) {
      const double v = data[e];
      data[e] = v + h;
      const double plus = loss(up);
      data[e] = v - h;
      const double minus = loss(up);
      data[e] = v;
      const double numeric = (plus - minus) / (2 * h);
      ASSERT_NEAR(grad[e], numeric, 1e-6 * std::max(1.0, std::abs(numeric)))
          << what << " input " << t << " element " << e;
    }
  }
}

// value_and_grads of f on 1 thread and on 2, equal bit for bit: the native kernels' partial sums
// (and their order) do not depend on the thread count.
template <typename F>
void expect_same_on_one_and_two_threads(F f, const at::Tensor& x,
                                        const std::vector<at::Tensor>& leaves,
                                        const at::Tensor& upstream, const std::string& what) {
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const std::vector<at::Tensor> one = value_and_grads(f, x, leaves, upstream);
  at::set_num_threads(2);
  const std::vector<at::Tensor> two = value_and_grads(f, x, leaves, upstream);
  at::set_num_threads(before);
  for (size_t i = 0; i < one.size(); ++i)
    EXPECT_TRUE(at::equal(one[i], two[i])) << what << " " << i;
}

// The name of y's autograd node ("none" without one).
inline std::string grad_fn_name(const at::Tensor& y) {
  return y.grad_fn() ? y.grad_fn()->name() : std::string("none");
}

// Every buffer of `got` (running statistics, batch counts) within 1e-5 of `expected`'s.
inline void expect_buffers_close(const torch::nn::Module& got, const torch::nn::Module& expected,
                                 const std::string& what) {
  auto theirs = got.named_buffers();
  for (const auto& item : expected.named_buffers()) {
    EXPECT_LE(
        relative_error(theirs[item.key()].to(torch::kDouble), item.value().to(torch::kDouble)),
        1e-5)
        << what << " " << item.key();
  }
}

// x in channels-last layout when `nhwc`, else NCHW: the native kernels run in either.
inline at::Tensor laid_out(const at::Tensor& x, bool nhwc) {
  return x.contiguous(nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous);
}
inline const char* layout_name(bool nhwc) { return nhwc ? "nhwc " : "nchw "; }

// The native output must come back in its input's layout.
inline void expect_layout(const at::Tensor& y, bool nhwc, const std::string& what) {
  EXPECT_TRUE(y.is_contiguous(nhwc ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous))
      << what << ": output not in the input's layout";
}

// The name of a depthwise configuration and shape, for failure messages.
inline std::string conv_name(int64_t k, int64_t d, int64_t s, int64_t p, bool relu,
                             const Shape& sh) {
  return "k" + std::to_string(k) + " d" + std::to_string(d) + " s" + std::to_string(s) + " p" +
         std::to_string(p) + (relu ? " relu " : " ") + std::to_string(sh.n) + "x" +
         std::to_string(sh.c) + "x" + std::to_string(sh.h) + "x" + std::to_string(sh.w);
}

}  // namespace datanas::kernel_checks
