// The native kernels as the ops use them: the AVX2 and AVX-512 tables against the portable one,
// the ops behind the registry with either backend, and a hand-run timing check.
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
#include "kernels/cpu_capability.h"
#include "kernels/depthwise_conv.h"
#include "kernels/kernel_backend.h"
#include "kernels/nhwc_kernels.h"
#include "kernels/plane_kernels.h"
#include "kernels/pointwise_conv.h"
#include "kernels/pool.h"
#include "nets/supernet.h"
#include "space/op_blocks.h"
#include "space/ops.h"
#include "util/error.h"

namespace datanas {
namespace {
using namespace kernel_checks;

// The AVX2 table against the portable one on the same planes (the portable float path is what
// CPUs without AVX2 run).
TEST(KernelTables, Avx2MatchesPortable) {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    GTEST_SKIP() << "no AVX2 + FMA on this CPU";
  torch::manual_seed(6);
  const auto& fast = kernels::avx2::kernels_f32();
  const auto& plain = kernels::portable::kernels_f32();
  for (const Shape& s : kShapes) {
    for (int64_t k : {3, 5}) {
      for (int64_t d : {1, 2}) {
        for (int64_t stride : {1, 2}) {
          kernels::ConvGeometry g;
          g.height = s.h, g.width = s.w, g.kernel = k, g.stride = stride, g.dilation = d;
          g.padding = d * (k - 1) / 2;
          g.out_height = (s.h + 2 * g.padding - d * (k - 1) - 1) / stride + 1;
          g.out_width = (s.w + 2 * g.padding - d * (k - 1) - 1) / stride + 1;
          at::Tensor x = torch::randn({s.h, s.w}), w = torch::randn({k, k});
          at::Tensor gy = torch::randn({g.out_height, g.out_width});
          std::vector<float> scratch(kernels::conv_scratch_elements(g));
          at::Tensor y[2], gx[2], gw[2];
          for (int t = 0; t < 2; ++t) {
            const auto& table = t == 0 ? fast : plain;
            y[t] = torch::empty({g.out_height, g.out_width});
            gx[t] = torch::empty({s.h, s.w});
            gw[t] = torch::zeros({k, k});
            table.conv_forward(x.data_ptr<float>(), w.data_ptr<float>(), y[t].data_ptr<float>(), g,
                               true, scratch.data());
            table.conv_backward(x.data_ptr<float>(), w.data_ptr<float>(), gy.data_ptr<float>(),
                                gx[t].data_ptr<float>(), gw[t].data_ptr<float>(), g, true,
                                scratch.data());
          }
          const std::string what = conv_name(k, d, stride, g.padding, true, s);
          EXPECT_LE(relative_error(y[0], y[1]), 1e-5) << what;
          EXPECT_LE(relative_error(gx[0], gx[1]), 1e-5) << what;
          EXPECT_LE(relative_error(gw[0], gw[1]), 1e-5) << what;
        }
      }
    }
    for (int64_t stride : {1, 2}) {
      kernels::PoolGeometry g;
      g.height = s.h, g.width = s.w, g.stride = stride;
      g.out_height = (s.h - 1) / stride + 1;
      g.out_width = (s.w - 1) / stride + 1;
      at::Tensor x = at::round(torch::randn({s.h, s.w}) * 2);
      at::Tensor gy = torch::randn({g.out_height, g.out_width});
      std::vector<float> scratch(kernels::pool_scratch_elements(g));
      for (bool max : {true, false}) {
        at::Tensor y[2], gx[2];
        for (int t = 0; t < 2; ++t) {
          const auto& table = t == 0 ? fast : plain;
          y[t] = torch::empty({g.out_height, g.out_width});
          gx[t] = torch::empty({s.h, s.w});
          (max ? table.max_pool_forward : table.avg_pool_forward)(
              x.data_ptr<float>(), y[t].data_ptr<float>(), g, scratch.data());
          if (max) {
            table.max_pool_backward(x.data_ptr<float>(), gy.data_ptr<float>(),
                                    gx[t].data_ptr<float>(), g, scratch.data());
          } else {
            table.avg_pool_backward(gy.data_ptr<float>(), gx[t].data_ptr<float>(), g,
                                    scratch.data());
          }
        }
        EXPECT_LE(relative_error(y[0], y[1]), 1e-6) << (max ? "max" : "avg");
        EXPECT_LE(relative_error(gx[0], gx[1]), 1e-6) << (max ? "max" : "avg");
      }
    }
  }
}

// The same for the NHWC tables (AVX2, and AVX-512 where the CPU has it), with channel counts that
// use every block width (32, 16, 8 and 1 channels) and the channel-blocked depthwise rows.
void expect_nhwc_table_matches_portable(const kernels::NhwcKernels<float>& fast) {
  const auto& plain = kernels::portable::nhwc_kernels_f32();
  // A strided dilated conv (the scatter backward) and stride-1 ones (the sliding kernels with a
  // remainder, in channel blocks where C allows, and the gather backward).
  const std::vector<std::vector<int64_t>> convs = {{5, 2, 2}, {3, 1, 1}, {5, 1, 2}};
  for (int64_t C : {int64_t{5}, int64_t{16}, int64_t{24}, int64_t{27}, int64_t{32}}) {
    // 1x1 convs of 11 pixels (tiles of 4 and a remainder) to one vector of outputs, where AVX-512
    // holds 16 inputs' weights in registers (C = 32: the sums carried through y), and their
    // weight gradients, 16 output rows at a time (24 outputs: a partial group of rows).
    for (int64_t outputs : {int64_t{16}, int64_t{24}}) {
      const at::Tensor px = torch::randn({11, C}), pwo = torch::randn({C, outputs});
      const at::Tensor pgy = torch::randn({11, outputs});
      at::Tensor py[2], pgw[2];
      for (int t = 0; t < 2; ++t) {
        const auto& table = t == 0 ? fast : plain;
        py[t] = torch::empty({11, outputs}), pgw[t] = torch::zeros({outputs, C});
        table.pointwise(px.data_ptr<float>(), pwo.data_ptr<float>(), py[t].data_ptr<float>(), C,
                        outputs, 0, 11, /*relu_x=*/false, nullptr);
        table.pointwise_wgrad(px.data_ptr<float>(), pgy.data_ptr<float>(), pgw[t].data_ptr<float>(),
                              C, outputs, 0, 11, /*relu_x=*/false);
      }
      EXPECT_LE(relative_error(py[0], py[1]), 1e-5) << "C " << C << " 1x1 to " << outputs;
      EXPECT_LE(relative_error(pgw[0], pgw[1]), 1e-5) << "C " << C << " 1x1 wgrad " << outputs;
    }
    for (const auto& conv : convs) {
      kernels::ConvGeometry g;
      g.height = 9, g.width = 11, g.kernel = conv[0], g.stride = conv[1], g.dilation = conv[2];
      g.padding = g.dilation * (g.kernel - 1) / 2;
      const int64_t reach = g.dilation * (g.kernel - 1);
      g.out_height = (g.height + 2 * g.padding - reach - 1) / g.stride + 1;
      g.out_width = (g.width + 2 * g.padding - reach - 1) / g.stride + 1;
      at::Tensor x = at::round(torch::randn({g.height, g.width, C}) * 2);
      at::Tensor w = torch::randn({g.kernel * g.kernel, C});
      at::Tensor gy = torch::randn({g.out_height, g.out_width, C});
      at::Tensor pw = torch::randn({C, 13});
      kernels::PoolGeometry pg;
      pg.height = g.height, pg.width = g.width, pg.stride = 1;
      pg.out_height = g.height, pg.out_width = g.width;
      at::Tensor pool_gy = torch::randn({g.height, g.width, C});
      const at::Tensor bn_a = torch::randn({C}), bn_b = torch::randn({C}),
                       bn_c0 = torch::randn({C});
      at::Tensor out[2][7];
      for (int t = 0; t < 2; ++t) {
        const auto& table = t == 0 ? fast : plain;
        at::Tensor* o = out[t];
        o[0] = torch::empty_like(gy), o[1] = torch::empty_like(x), o[2] = torch::zeros_like(w);
        o[3] = torch::empty_like(x), o[4] = torch::empty_like(x), o[5] = torch::empty({7, 13});
        std::vector<float> scratch(kernels::nhwc_conv_scratch_elements(g, C));
        table.conv_forward(x.data_ptr<float>(), w.data_ptr<float>(), o[0].data_ptr<float>(), C, g,
                           true, scratch.data());
        table.conv_backward(x.data_ptr<float>(), w.data_ptr<float>(), gy.data_ptr<float>(),
                            o[1].data_ptr<float>(), o[2].data_ptr<float>(), C, g, true,
                            scratch.data());
        table.max_pool_forward(x.data_ptr<float>(), o[3].data_ptr<float>(), C, pg);
        table.max_pool_backward(x.data_ptr<float>(), nullptr, pool_gy.data_ptr<float>(), nullptr,
                                o[4].data_ptr<float>(), C, pg);
        // The same with the maxima given.
        o[6] = torch::empty_like(x);
        table.max_pool_backward(x.data_ptr<float>(), o[3].data_ptr<float>(),
                                pool_gy.data_ptr<float>(), nullptr, o[6].data_ptr<float>(), C, pg);
        // Through a batch norm's map, against the map applied first.
        const kernels::PoolOutputGradMap<float> map{bn_a.data_ptr<float>(), bn_b.data_ptr<float>(),
                                                    bn_c0.data_ptr<float>()};
        const at::Tensor mapped = (bn_a * pool_gy + bn_b * o[3] + bn_c0).contiguous();
        for (int pool = 0; pool < 2; ++pool) {
          at::Tensor fused = torch::empty_like(x), two_steps = torch::empty_like(x);
          if (pool == 0) {
            table.max_pool_backward(x.data_ptr<float>(), o[3].data_ptr<float>(),
                                    pool_gy.data_ptr<float>(), &map, fused.data_ptr<float>(), C,
                                    pg);
            table.max_pool_backward(x.data_ptr<float>(), o[3].data_ptr<float>(),
                                    mapped.data_ptr<float>(), nullptr, two_steps.data_ptr<float>(),
                                    C, pg);
          } else {
            table.avg_pool_backward(o[3].data_ptr<float>(), pool_gy.data_ptr<float>(), &map,
                                    fused.data_ptr<float>(), C, pg);
            table.avg_pool_backward(nullptr, mapped.data_ptr<float>(), nullptr,
                                    two_steps.data_ptr<float>(), C, pg);
          }
          EXPECT_LE(relative_error(fused, two_steps), 1e-6) << "C " << C << " pool " << pool;
        }
        // 7 pixels of C inputs to 13 outputs.
        table.pointwise(x.data_ptr<float>(), pw.data_ptr<float>(), o[5].data_ptr<float>(), C, 13, 0,
                        7, /*relu_x=*/true, nullptr);
        // Streamed stores change where y goes, not its values: bit for bit the plain pass, through
        // a gate, with 24 outputs (aligned rows of a 16- and an 8-wide block).
        const at::Tensor pw24 = torch::randn({C, 24}), gate = torch::randn({7, 24});
        at::Tensor plain_y = torch::empty({7, 24}), streamed_y = torch::empty({7, 24});
        table.pointwise(x.data_ptr<float>(), pw24.data_ptr<float>(), plain_y.data_ptr<float>(), C,
                        24, 0, 7, true, gate.data_ptr<float>());
        table.pointwise_streamed(x.data_ptr<float>(), pw24.data_ptr<float>(),
                                 streamed_y.data_ptr<float>(), C, 24, 0, 7, true,
                                 gate.data_ptr<float>());
        EXPECT_TRUE(at::equal(plain_y, streamed_y)) << "C " << C << " streamed";
      }
      for (int i = 0; i < 7; ++i)
        EXPECT_LE(relative_error(out[0][i], out[1][i]), 1e-5)
            << "C " << C << " k" << g.kernel << " output " << i;
      EXPECT_TRUE(at::equal(out[0][6], out[0][4])) << "C " << C << " maxima given";
    }
  }
}

TEST(KernelTables, NhwcAvx2MatchesPortable) {
  if (kernels::cpu_supported_capability() < kernels::CpuCapability::kAvx2)
    GTEST_SKIP() << "no AVX2 + FMA on this CPU";
  torch::manual_seed(7);
  expect_nhwc_table_matches_portable(kernels::avx2::nhwc_kernels_f32());
}

TEST(KernelTables, NhwcAvx512MatchesPortable) {
  if (kernels::cpu_supported_capability() < kernels::CpuCapability::kAvx512)
    GTEST_SKIP() << "no AVX-512 on this CPU";
  torch::manual_seed(7);
  expect_nhwc_table_matches_portable(kernels::avx512::nhwc_kernels_f32());
}

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
