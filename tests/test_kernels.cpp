// The native CPU kernels (src/kernels/) against LibTorch's: outputs and gradients within 1e-5
// relative on random shapes (odd sizes, batch 1, channel counts off multiples of 8) and finite
// differences in double, kernel by kernel.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "kernel_checks.h"
#include "kernels/batch_norm.h"
#include "kernels/depthwise_conv.h"
#include "kernels/kernel_backend.h"
#include "kernels/plane_kernels.h"
#include "kernels/pointwise_conv.h"
#include "kernels/pool.h"
#include "nets/supernet.h"
#include "space/ops.h"
#include "util/error.h"

namespace datanas {
namespace {
using namespace kernel_checks;

TEST(KernelBackend, ParsesAndNames) {
  EXPECT_EQ(parse_kernel_backend("native"), KernelBackend::kNative);
  EXPECT_EQ(parse_kernel_backend("torch"), KernelBackend::kTorch);
  EXPECT_EQ(kernel_backend_name(KernelBackend::kNative), "native");
  EXPECT_EQ(kernel_backend_name(KernelBackend::kTorch), "torch");
  EXPECT_THROW(parse_kernel_backend("cuda"), Error);
  at::Tensor f = torch::zeros({1});
  EXPECT_TRUE(use_native_kernels(KernelBackend::kNative, f));
  EXPECT_TRUE(use_native_kernels(KernelBackend::kNative, f.to(torch::kDouble)));
  EXPECT_FALSE(use_native_kernels(KernelBackend::kTorch, f));
  EXPECT_FALSE(use_native_kernels(KernelBackend::kNative, f.to(torch::kHalf)));
  at::Tensor nhwc = torch::zeros({2, 3, 4, 5}).contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(use_native_kernels(KernelBackend::kNative, nhwc));
  EXPECT_FALSE(use_native_kernels(KernelBackend::kNative, nhwc.to(torch::kHalf)));
}

TEST(KernelDepthwise, MatchesLibTorch) {
  torch::manual_seed(0);
  for (bool nhwc : {false, true}) {
    for (const Shape& s : kShapes) {
      for (int64_t k : {3, 5, 7}) {  // 7: the backward without a tap-row template
        for (int64_t dilation : {1, 2}) {
          for (int64_t stride : {1, 2}) {
            for (bool relu : {false, true}) {
              // DARTS' "same" padding, and none (the general backward path).
              for (int64_t padding : {dilation * (k - 1) / 2, int64_t{0}}) {
                if (dilation * (k - 1) + 1 > std::min(s.h, s.w) + 2 * padding) continue;
                at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}), nhwc);
                at::Tensor w = torch::randn({s.c, 1, k, k});
                auto native = [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
                  return native_depthwise_conv2d(in, l[0], {stride, padding, dilation, relu});
                };
                auto reference = [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
                  return at::conv2d(relu ? at::relu(in) : in, l[0], {}, stride, padding, dilation,
                                    s.c);
                };
                at::Tensor up = torch::randn(reference(x, {w}).sizes());
                const std::string what =
                    layout_name(nhwc) + conv_name(k, dilation, stride, padding, relu, s);
                const auto got = value_and_grads(native, x, {w}, up);
                expect_layout(got[0], nhwc, what);
                expect_close(got, value_and_grads(reference, x, {w}, up), what);
              }
            }
          }
        }
      }
    }
  }
}

// Plain and with the ReLU on its input (fused in channels-last, at::relu first in NCHW).
TEST(KernelPointwise, MatchesLibTorch) {
  torch::manual_seed(8);
  for (bool nhwc : {false, true}) {
    for (bool relu : {false, true}) {
      for (const Shape& s : kShapes) {
        for (int64_t outputs : {s.c, int64_t{13}, int64_t{16}}) {
          at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}), nhwc);
          at::Tensor w = torch::randn({outputs, s.c, 1, 1});
          at::Tensor up = torch::randn({s.n, outputs, s.h, s.w});
          expect_close(value_and_grads(
                           [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
                             return native_pointwise_conv2d(in, l[0], relu);
                           },
                           x, {w}, up),
                       value_and_grads(
                           [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
                             return at::conv2d(relu ? at::relu(in) : in, l[0]);
                           },
                           x, {w}, up),
                       std::string(layout_name(nhwc)) + (relu ? "relu " : "") +
                           std::to_string(s.c) + "->" + std::to_string(outputs));
        }
      }
    }
  }
}

TEST(KernelDepthwise, FiniteDifferencesInDouble) {
  torch::manual_seed(1);
  const Shape s{2, 3, 7, 6};
  for (bool nhwc : {false, true}) {
    for (int64_t k : {3, 5}) {
      for (int64_t dilation : {1, 2}) {
        for (int64_t stride : {1, 2}) {
          for (bool relu : {false, true}) {
            const int64_t padding = dilation * (k - 1) / 2;
            at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}, torch::kDouble), nhwc);
            at::Tensor w = torch::randn({s.c, 1, k, k}, torch::kDouble);
            expect_finite_differences(
                [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
                  return native_depthwise_conv2d(in, l[0], {stride, padding, dilation, relu});
                },
                x, {w}, layout_name(nhwc) + conv_name(k, dilation, stride, padding, relu, s));
          }
        }
      }
    }
  }
}

at::Tensor torch_pool(bool max, const at::Tensor& x, int64_t stride) {
  return max ? at::max_pool2d(x, {3, 3}, {stride, stride}, {1, 1})
             : at::avg_pool2d(x, {3, 3}, {stride, stride}, {1, 1}, false, false);
}

at::Tensor native_pool(bool max, const at::Tensor& x, int64_t stride) {
  return max ? native_max_pool3x3(x, stride) : native_avg_pool3x3(x, stride);
}

// An architecture step asks autograd for the alpha gradients alone: the convolutions then skip
// their weight gradient (and the pointwise one its input gradient when the input needs none).
// Each gradient asked for on its own must equal the one of a full backward.
TEST(KernelConvs, PartialGradientsEqualTheFullBackward) {
  torch::manual_seed(3);
  struct Case {
    std::string name;
    std::vector<int64_t> weight_shape;
    std::function<at::Tensor(const at::Tensor&, const at::Tensor&)> conv;
  };
  const int64_t C = 11;
  const std::vector<Case> cases = {
      {"depthwise k3 s1",
       {C, 1, 3, 3},
       [](const at::Tensor& x, const at::Tensor& w) {
         return native_depthwise_conv2d(x, w, {1, 1, 1, true});
       }},
      {"depthwise k5 d2 s2",
       {C, 1, 5, 5},
       [](const at::Tensor& x, const at::Tensor& w) {
         return native_depthwise_conv2d(x, w, {2, 4, 2, true});
       }},
      {"pointwise", {7, C, 1, 1}, [](const at::Tensor& x, const at::Tensor& w) {
         return native_pointwise_conv2d(x, w);
       }}};
  for (bool nhwc : {false, true}) {
    for (const Case& c : cases) {
      const std::string what = layout_name(nhwc) + c.name;
      const at::Tensor x = laid_out(torch::randn({2, C, 13, 10}), nhwc);
      const at::Tensor w = torch::randn(c.weight_shape);
      const at::Tensor up = torch::randn(c.conv(x, w).sizes());
      const std::vector<at::Tensor> full = value_and_grads(
          [&](const at::Tensor& in, const std::vector<at::Tensor>& l) { return c.conv(in, l[0]); },
          x, {w}, up);
      auto grad_of = [&](bool input_needs_grad, bool want_input) {
        at::Tensor xl = x.detach().clone().requires_grad_(input_needs_grad);
        at::Tensor wl = w.detach().clone().requires_grad_(true);
        const at::Tensor loss = (c.conv(xl, wl) * up).sum();
        return torch::autograd::grad({loss}, {want_input ? xl : wl})[0];
      };
      EXPECT_LE(relative_error(grad_of(true, true), full[1]), 1e-6) << what << " input only";
      EXPECT_LE(relative_error(grad_of(true, false), full[2]), 1e-6) << what << " weight only";
      EXPECT_LE(relative_error(grad_of(false, false), full[2]), 1e-6)
          << what << " weight of an input without gradient";
    }
  }
}

TEST(KernelPool, MatchesLibTorch) {
  torch::manual_seed(2);
  for (bool nhwc : {false, true}) {
    for (const Shape& s : kShapes) {
      for (bool max : {true, false}) {
        for (int64_t stride : {1, 2}) {
          // Rounded inputs give ties: the gradient must go where LibTorch sends it.
          for (bool ties : {false, true}) {
            at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}), nhwc);
            if (ties) x = at::round(x * 2);
            at::Tensor up = torch::randn(torch_pool(max, x, stride).sizes());
            const std::string what = layout_name(nhwc) + std::string(max ? "max" : "avg") + " s" +
                                     std::to_string(stride) + (ties ? " ties " : " ") +
                                     std::to_string(s.c) + "x" + std::to_string(s.h) + "x" +
                                     std::to_string(s.w);
            expect_close(value_and_grads(
                             [&](const at::Tensor& in, const std::vector<at::Tensor>&) {
                               return native_pool(max, in, stride);
                             },
                             x, {}, up),
                         value_and_grads(
                             [&](const at::Tensor& in, const std::vector<at::Tensor>&) {
                               return torch_pool(max, in, stride);
                             },
                             x, {}, up),
                         what);
          }
        }
      }
    }
  }
}

// A window holding a NaN gives NaN, as in LibTorch; every other window its maximum, exactly.
TEST(KernelPool, MaxPoolSpreadsNaNsLikeLibTorch) {
  torch::manual_seed(5);
  for (bool nhwc : {false, true}) {
    for (int64_t stride : {1, 2}) {
      at::Tensor x = torch::randn({2, 19, 9, 11});
      x.index_put_({0, 3, 4, 5}, std::nanf(""));
      x.index_put_({1, 18, 0, 10}, std::nanf(""));
      x = laid_out(x, nhwc);
      const at::Tensor got = native_pool(true, x, stride), expected = torch_pool(true, x, stride);
      const std::string what = layout_name(nhwc) + std::string(" s") + std::to_string(stride);
      EXPECT_TRUE(at::equal(at::isnan(got), at::isnan(expected))) << what;
      EXPECT_GT(at::isnan(got).sum().item<int64_t>(), 1) << what;
      EXPECT_TRUE(at::equal(at::nan_to_num(got, 0.0), at::nan_to_num(expected, 0.0))) << what;
    }
  }
}

// A NaN input stays NaN through the fused ReLU, as through LibTorch's relu: a poisoned batch
// must reach the loss, where the search stops or skips it (it did not once 1-channel searches
// ran channels-last).
TEST(KernelRelu, FusedReluKeepsNaNsLikeLibTorch) {
  torch::manual_seed(6);
  for (bool nhwc : {false, true}) {
    at::Tensor x = torch::randn({2, 11, 6, 7});
    x.index_put_({1, 4, 2, 3}, std::nanf(""));
    x = laid_out(x, nhwc);
    const at::Tensor relu_x = at::relu(x.contiguous());
    const at::Tensor pw = torch::randn({5, 11, 1, 1}), dw = torch::randn({11, 1, 3, 3});
    const std::string what = layout_name(nhwc);
    if (nhwc) {
      EXPECT_TRUE(at::equal(at::isnan(native_pointwise_conv2d(x, pw, true)),
                            at::isnan(at::conv2d(relu_x, pw))))
          << what << " pointwise";
    }
    EXPECT_TRUE(at::equal(at::isnan(native_depthwise_conv2d(x, dw, {1, 1, 1, true})),
                          at::isnan(at::conv2d(relu_x, dw, {}, 1, 1, 1, 11))))
        << what << " depthwise";
  }
}

TEST(KernelPointwise, FiniteDifferencesInDouble) {
  torch::manual_seed(9);
  for (bool nhwc : {false, true}) {
    for (bool relu : {false, true}) {
      at::Tensor x = laid_out(torch::randn({2, 3, 5, 4}, torch::kDouble), nhwc);
      at::Tensor w = torch::randn({4, 3, 1, 1}, torch::kDouble);
      expect_finite_differences(
          [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
            return native_pointwise_conv2d(in, l[0], relu);
          },
          x, {w}, layout_name(nhwc) + std::string(relu ? "relu " : "") + "pointwise 3->4");
    }
  }
}

TEST(KernelPool, FiniteDifferencesInDouble) {
  torch::manual_seed(3);
  for (bool nhwc : {false, true}) {
    for (bool max : {true, false}) {
      for (int64_t stride : {1, 2}) {
        at::Tensor x = laid_out(torch::randn({2, 3, 7, 6}, torch::kDouble), nhwc);
        expect_finite_differences(
            [&](const at::Tensor& in, const std::vector<at::Tensor>&) {
              return native_pool(max, in, stride);
            },
            x, {},
            layout_name(nhwc) + std::string(max ? "max" : "avg") + " s" + std::to_string(stride));
      }
    }
  }
}

TEST(KernelBatchNorm, MatchesLibTorchAndUpdatesRunningStatistics) {
  torch::manual_seed(4);
  for (bool nhwc : {false, true}) {
    for (const Shape& s : kShapes) {
      for (bool affine : {false, true}) {
        at::Tensor x = laid_out(torch::randn({s.n, s.c, s.h, s.w}) * 3 + 1.5, nhwc);
        std::vector<at::Tensor> params;
        if (affine) params = {torch::randn({s.c}), torch::randn({s.c})};
        at::Tensor rm_native = torch::randn({s.c}), rv_native = torch::rand({s.c}) + 0.5;
        at::Tensor rm_torch = rm_native.clone(), rv_torch = rv_native.clone();
        auto native = [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return native_batch_norm_train(in, affine ? l[0] : at::Tensor(),
                                         affine ? l[1] : at::Tensor(), rm_native, rv_native, 0.1,
                                         1e-5);
        };
        auto reference = [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return at::batch_norm(in, affine ? l[0] : at::Tensor(), affine ? l[1] : at::Tensor(),
                                rm_torch, rv_torch, true, 0.1, 1e-5, false);
        };
        at::Tensor up = torch::randn(x.sizes());
        const std::string what = layout_name(nhwc) + std::string(affine ? "affine " : "") +
                                 std::to_string(s.n) + "x" + std::to_string(s.c) + "x" +
                                 std::to_string(s.h) + "x" + std::to_string(s.w);
        expect_close(value_and_grads(native, x, params, up),
                     value_and_grads(reference, x, params, up), what);
        EXPECT_LE(relative_error(rm_native, rm_torch), 1e-5) << what;
        EXPECT_LE(relative_error(rv_native, rv_torch), 1e-5) << what;
      }
    }
  }
}

// Without autograd, batch_norm_forward normalises an input nobody else holds in place; one that
// is still held elsewhere is left as it was. Both give LibTorch's output and running statistics.
TEST(KernelBatchNorm, InPlaceWithoutAutogradOnlyForUnheldInputs) {
  torch::manual_seed(5);
  for (bool nhwc : {false, true}) {
    for (bool affine : {false, true}) {
      const std::string what = layout_name(nhwc) + std::string(affine ? "affine" : "plain");
      const at::Tensor x = laid_out(torch::randn({3, 11, 7, 9}) * 2 + 1, nhwc);
      auto make_bn = [&] {
        torch::manual_seed(6);  // the same affine parameters in every module
        torch::nn::BatchNorm2d bn(torch::nn::BatchNormOptions(11).affine(affine));
        if (affine) {
          at::NoGradGuard no_grad;
          bn->weight.normal_();
          bn->bias.normal_();
        }
        return bn;
      };
      torch::nn::BatchNorm2d reference = make_bn(), in_place = make_bn(), copying = make_bn();
      at::NoGradGuard no_grad;
      const at::Tensor expected = reference->forward(x);

      at::Tensor temporary = x.clone();
      const void* data = temporary.data_ptr();
      const at::Tensor a =
          batch_norm_forward(*in_place, std::move(temporary), KernelBackend::kNative);
      EXPECT_EQ(a.data_ptr(), data) << what << ": not normalised in place";
      EXPECT_LE(relative_error(a, expected), 1e-5) << what;

      const at::Tensor held = x.clone();
      const at::Tensor b = batch_norm_forward(*copying, held, KernelBackend::kNative);
      EXPECT_NE(b.data_ptr(), held.data_ptr()) << what << ": a held input was overwritten";
      EXPECT_TRUE(held.equal(x)) << what;
      EXPECT_LE(relative_error(b, expected), 1e-5) << what;
      for (const auto& bn : {in_place, copying}) {
        EXPECT_LE(relative_error(bn->running_mean, reference->running_mean), 1e-5) << what;
        EXPECT_LE(relative_error(bn->running_var, reference->running_var), 1e-5) << what;
      }
    }
  }
}

TEST(KernelBatchNorm, FiniteDifferencesInDouble) {
  torch::manual_seed(5);
  for (bool nhwc : {false, true}) {
    at::Tensor x = laid_out(torch::randn({3, 2, 4, 5}, torch::kDouble), nhwc);
    std::vector<at::Tensor> params = {torch::randn({2}, torch::kDouble),
                                      torch::randn({2}, torch::kDouble)};
    expect_finite_differences(
        [&](const at::Tensor& in, const std::vector<at::Tensor>& l) {
          return native_batch_norm_train(in, l[0], l[1], at::Tensor(), at::Tensor(), 0.1, 1e-5);
        },
        x, params, layout_name(nhwc) + std::string("affine batch norm"));
  }
}

}  // namespace
}  // namespace datanas
