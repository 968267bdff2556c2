// The native kernels as the ops use them: the ops behind the registry with either backend, and a
// hand-run timing check (the kernel tables against each other: test_kernel_tables.cpp).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_timing.h"
#include "kernel_checks.h"
#include "kernels/batch_norm.h"
#include "kernels/depthwise_conv.h"
#include "kernels/kernel_backend.h"
#include "kernels/pointwise_conv.h"
#include "kernels/pool.h"
#include "nets/supernet.h"
#include "space/op_blocks.h"
#include "space/ops.h"
#include "util/error.h"

namespace datanas {
namespace {
using namespace kernel_checks;

// Every op of the registry and the 1x1 cell preprocessing, both strides, supernet (affine =
// false, BN after pools) and evaluation (affine) flavours, NCHW and channels-last: same
// parameters, same outputs, gradients and BN statistics.
TEST(KernelOps, NativeAndTorchBackendsAgree) {
  const int64_t C = 6;
  std::vector<std::string> names = cnn_op_names();
  names.push_back("preprocess");
  auto make = [&](const std::string& name, int64_t stride, bool affine, KernelBackend kernels) {
    torch::manual_seed(7);
    if (name == "preprocess")
      return torch::nn::AnyModule(ReLUConvBN(C, C, 1, 1, 0, affine, kernels));
    return make_cnn_op(name, C, stride, affine, !affine, kernels);
  };
  for (bool nhwc : {false, true}) {
    for (const std::string& name : names) {
      for (int64_t stride : {1, 2}) {
        if (name == "preprocess" && stride == 2) continue;
        for (bool affine : {false, true}) {
          torch::nn::AnyModule a = make(name, stride, affine, KernelBackend::kTorch);
          torch::nn::AnyModule b = make(name, stride, affine, KernelBackend::kNative);
          at::Tensor x = laid_out(torch::randn({3, C, 9, 9}), nhwc);
          at::Tensor xa = x.clone().requires_grad_(true), xb = x.clone().requires_grad_(true);
          at::Tensor ya = a.forward<at::Tensor>(xa), yb = b.forward<at::Tensor>(xb);
          at::Tensor up = torch::randn(ya.sizes());
          const std::string what =
              layout_name(nhwc) + name + " s" + std::to_string(stride) + (affine ? " affine" : "");
          EXPECT_LE(relative_error(yb, ya), 1e-5) << what;
          if (!ya.requires_grad()) continue;  // none
          (ya * up).sum().backward();
          (yb * up).sum().backward();
          EXPECT_LE(relative_error(xb.grad(), xa.grad()), 1e-5) << what;
          auto pa = a.ptr()->named_parameters(), pb = b.ptr()->named_parameters();
          for (const auto& item : pa) {
            EXPECT_LE(relative_error(pb[item.key()].grad(), item.value().grad()), 1e-5)
                << what << " " << item.key();
          }
          expect_buffers_close(*b.ptr(), *a.ptr(), what);
          a.ptr()->eval();
          b.ptr()->eval();
          EXPECT_LE(relative_error(b.forward<at::Tensor>(x), a.forward<at::Tensor>(x)), 1e-5)
              << what << " eval";
        }
      }
    }
  }
}

// Timings by hand, not a test: build/datanas_tests --gtest_also_run_disabled_tests
// --gtest_filter='*KernelTiming*'. Prints LibTorch vs native medians per op.
TEST(KernelTiming, DISABLED_OpsAndSupernet) {
  const int threads = at::get_num_threads();
  at::set_num_threads(2);
  torch::manual_seed(0);
  const at::Tensor x = torch::randn({64, 16, 32, 32});
  const at::Tensor w3 = torch::randn({16, 1, 3, 3}), w5 = torch::randn({16, 1, 5, 5});
  const at::Tensor up = torch::randn(x.sizes()), up2 = torch::randn({64, 16, 16, 16});
  using Op = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;
  struct Row {
    std::string name;
    Op torch_op, native_op;
    at::Tensor weight, upstream;
  };
  at::Tensor rm = torch::zeros({16}), rv = torch::ones({16});
  std::vector<Row> rows = {
      {"dw3x3", [](auto& a, auto& w) { return at::conv2d(a, w, {}, 1, 1, 1, 16); },
       [](auto& a, auto& w) {
         return native_depthwise_conv2d(a, w, {1, 1, 1, false});
       },
       w3, up},
      {"dw3x3_s2", [](auto& a, auto& w) { return at::conv2d(a, w, {}, 2, 1, 1, 16); },
       [](auto& a, auto& w) {
         return native_depthwise_conv2d(a, w, {2, 1, 1, false});
       },
       w3, up2},
      {"dw5x5", [](auto& a, auto& w) { return at::conv2d(a, w, {}, 1, 2, 1, 16); },
       [](auto& a, auto& w) {
         return native_depthwise_conv2d(a, w, {1, 2, 1, false});
       },
       w5, up},
      {"dw5x5_dil2", [](auto& a, auto& w) { return at::conv2d(a, w, {}, 1, 4, 2, 16); },
       [](auto& a, auto& w) {
         return native_depthwise_conv2d(a, w, {1, 4, 2, false});
       },
       w5, up},
      {"relu_dw3x3", [](auto& a, auto& w) { return at::conv2d(at::relu(a), w, {}, 1, 1, 1, 16); },
       [](auto& a, auto& w) {
         return native_depthwise_conv2d(a, w, {1, 1, 1, true});
       },
       w3, up},
      {"conv1x1", [](auto& a, auto& w) { return at::conv2d(a, w); },
       [](auto& a, auto& w) { return native_pointwise_conv2d(a, w); }, torch::randn({16, 16, 1, 1}),
       up},
      {"max_pool_3x3",
       [](auto& a, auto&) {
         return at::max_pool2d(a, {3, 3}, {1, 1}, {1, 1});
       },
       [](auto& a, auto&) { return native_max_pool3x3(a, 1); }, at::Tensor(), up},
      {"max_pool_3x3_s2",
       [](auto& a, auto&) {
         return at::max_pool2d(a, {3, 3}, {2, 2}, {1, 1});
       },
       [](auto& a, auto&) { return native_max_pool3x3(a, 2); }, at::Tensor(), up2},
      {"avg_pool_3x3",
       [](auto& a, auto&) {
         return at::avg_pool2d(a, {3, 3}, {1, 1}, {1, 1}, false, false);
       },
       [](auto& a, auto&) { return native_avg_pool3x3(a, 1); }, at::Tensor(), up},
      {"avg_pool_3x3_s2",
       [](auto& a, auto&) {
         return at::avg_pool2d(a, {3, 3}, {2, 2}, {1, 1}, false, false);
       },
       [](auto& a, auto&) { return native_avg_pool3x3(a, 2); }, at::Tensor(), up2},
      {"batch_norm",
       [&](auto& a, auto&) { return at::batch_norm(a, {}, {}, rm, rv, true, 0.1, 1e-5, true); },
       [&](auto& a, auto&) { return native_batch_norm_train(a, {}, {}, rm, rv, 0.1, 1e-5); },
       at::Tensor(), up},
  };
  for (const std::string& name : {std::string("sep_conv_3x3"), std::string("sep_conv_5x5"),
                                  std::string("dil_conv_3x3"), std::string("dil_conv_5x5")}) {
    auto t = std::make_shared<torch::nn::AnyModule>(
        make_cnn_op(name, 16, 1, false, true, KernelBackend::kTorch));
    auto n = std::make_shared<torch::nn::AnyModule>(
        make_cnn_op(name, 16, 1, false, true, KernelBackend::kNative));
    rows.push_back({name, [t](auto& a, auto&) { return t->forward<at::Tensor>(a); },
                    [n](auto& a, auto&) { return n->forward<at::Tensor>(a); }, at::Tensor(), up});
  }
  std::printf("%-16s %10s %10s %10s %10s %8s %8s\n", "op (64x16x32x32)", "torch_fwd", "torch_fb",
              "native_fwd", "native_fb", "x_fwd", "x_fb");
  for (const Row& row : rows) {
    at::Tensor xg = x.clone().requires_grad_(true);
    at::Tensor wg = row.weight.defined() ? row.weight.clone().requires_grad_(true) : at::Tensor();
    double ms[4];
    for (int b = 0; b < 2; ++b) {
      const Op& op = b == 0 ? row.torch_op : row.native_op;
      ms[2 * b] = median_ms(
          [&] {
            at::NoGradGuard no_grad;
            op(x, row.weight);
          },
          1, 9);
      ms[2 * b + 1] = median_ms(
          [&] {
            at::Tensor y = op(xg, wg);
            std::vector<at::Tensor> inputs = {xg};
            if (wg.defined()) inputs.push_back(wg);
            torch::autograd::grad({y}, inputs, {row.upstream});
          },
          1, 9);
    }
    std::printf("%-16s %10.2f %10.2f %10.2f %10.2f %8.1f %8.1f\n", row.name.c_str(), ms[0], ms[1],
                ms[2], ms[3], ms[0] / ms[2], ms[1] / ms[3]);
  }
  // One weight step of the search's shape: C = 16, 8 cells, batch 64, 3x32x32, one op per edge.
  const at::Tensor images = torch::randn({64, 3, 32, 32});
  const at::Tensor labels = torch::randint(10, {64}, torch::kLong);
  CellWeights cw[2];
  for (auto& c : cw) {
    c.weights = torch::zeros({14, 8});
    c.selected.assign(14 * 8, 0);
    for (int e = 0; e < 14; ++e) {
      const int op = 1 + static_cast<int>(torch::randint(7, {1}).item<int64_t>());
      c.selected[e * 8 + op] = 1;
      c.weights[e][op] = 1.0;
    }
  }
  double step[2];
  for (int b = 0; b < 2; ++b) {
    SupernetOptions o;
    o.input_channels = 3;
    o.init_channels = 16;
    o.layers = 8;
    o.kernels = b == 0 ? KernelBackend::kTorch : KernelBackend::kNative;
    torch::manual_seed(1);
    Supernet net(o);
    step[b] = median_ms(
        [&] {
          at::Tensor logits = net->forward(images, cw[0], cw[1], ExecMode::kSelected);
          at::cross_entropy_loss(logits, labels).backward();
        },
        1, 3);
  }
  std::printf(
      "supernet fwd+bwd (C16, 8 cells, 64x3x32x32, one op per edge): torch %.0f ms, "
      "native %.0f ms, x%.1f\n",
      step[0], step[1], step[0] / step[1]);
  at::set_num_threads(threads);
}

}  // namespace
}  // namespace datanas
