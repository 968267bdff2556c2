// The vectorised kernel tables against the portable one on the same data: the AVX2 plane
// kernels (NCHW), and the AVX2 and AVX-512 NHWC kernels on channel counts that take every block
// width and the channel-blocked depthwise rows.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "kernel_checks.h"
#include "kernels/cpu_capability.h"
#include "kernels/nhwc_kernels.h"
#include "kernels/plane_kernels.h"

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
// use every block width (32, 16, 8 and 1 channels) and the channel-blocked depthwise rows; the
// channel parts' gather against LibTorch's concatenation.
void expect_nhwc_table_matches_portable(const kernels::NhwcKernels<float>& fast) {
  const auto& plain = kernels::portable::nhwc_kernels_f32();
  // A strided dilated conv (the scatter backward) and stride-1 ones (the sliding kernels with a
  // remainder, in channel blocks where C allows, and the gather backward).
  const std::vector<std::vector<int64_t>> convs = {{5, 2, 2}, {3, 1, 1}, {5, 1, 2}};
  for (int64_t C : {int64_t{5}, int64_t{16}, int64_t{24}, int64_t{27}, int64_t{32}}) {
    // 1x1 convs of 11 pixels (tiles of 4 and a remainder) to one vector of outputs, where AVX-512
    // holds 16 inputs' weights in registers (C = 32: the sums carried through y), also through a
    // gate (applied after the last chunk of inputs) and streamed, and their weight gradients, 16
    // output rows at a time (24 outputs: a partial group of rows).
    for (int64_t outputs : {int64_t{16}, int64_t{24}}) {
      const at::Tensor px = torch::randn({11, C}), pwo = torch::randn({C, outputs});
      const at::Tensor pgy = torch::randn({11, outputs}), gate = torch::randn({11, outputs});
      const at::Tensor gated = at::where(gate > 0, px.mm(pwo), at::zeros({}));
      at::Tensor py[2], pgw[2];
      for (int t = 0; t < 2; ++t) {
        const auto& table = t == 0 ? fast : plain;
        py[t] = torch::empty({11, outputs}), pgw[t] = torch::zeros({outputs, C});
        table.pointwise(px.data_ptr<float>(), pwo.data_ptr<float>(), py[t].data_ptr<float>(), C,
                        outputs, 0, 11, /*relu_x=*/false, nullptr);
        table.pointwise_wgrad(px.data_ptr<float>(), pgy.data_ptr<float>(), pgw[t].data_ptr<float>(),
                              C, outputs, 0, 11, /*relu_x=*/false);
        at::Tensor plain_gated = torch::empty({11, outputs}),
                   streamed = torch::empty({11, outputs});
        table.pointwise(px.data_ptr<float>(), pwo.data_ptr<float>(), plain_gated.data_ptr<float>(),
                        C, outputs, 0, 11, false, gate.data_ptr<float>());
        table.pointwise_streamed(px.data_ptr<float>(), pwo.data_ptr<float>(),
                                 streamed.data_ptr<float>(), C, outputs, 0, 11, false,
                                 gate.data_ptr<float>());
        EXPECT_LE(relative_error(plain_gated, gated), 1e-5) << "C " << C << " gated " << outputs;
        // Not to the bit: separate instantiations, where GCC fused different multiply-adds.
        EXPECT_LE(relative_error(streamed, plain_gated), 1e-6)
            << "C " << C << " streamed " << outputs;
      }
      EXPECT_LE(relative_error(py[0], py[1]), 1e-5) << "C " << C << " 1x1 to " << outputs;
      EXPECT_LE(relative_error(pgw[0], pgw[1]), 1e-5) << "C " << C << " 1x1 wgrad " << outputs;
    }
    // Pixels 2..10 of three channel parts (C, 3 and 16 channels, one with NaNs) gathered into
    // rows, with and without the ReLU: exactly LibTorch's concatenation (and relu, NaN kept).
    const std::vector<int64_t> channels = {C, 3, 16};
    std::vector<at::Tensor> parts;
    std::vector<const float*> part_data;
    for (int64_t c : channels) {
      parts.push_back(torch::randn({11, c}));
      part_data.push_back(parts.back().data_ptr<float>());
    }
    parts[1][4][1] = std::nanf("");
    for (bool relu : {false, true}) {
      const at::Tensor joined = at::cat(parts, 1).slice(0, 2, 11);
      const at::Tensor expected = relu ? at::relu(joined) : joined;
      for (const auto* table : {&fast, &plain}) {
        at::Tensor rows = torch::full({9, C + 19}, 7.0f);
        table->gather_channels(part_data.data(), channels.data(), 3, 2, 11, relu,
                               rows.data_ptr<float>());
        EXPECT_TRUE(at::equal(rows.nan_to_num(), expected.nan_to_num()) &&
                    at::isnan(rows).sum().item<int64_t>() == 1)
            << "C " << C << " gather, relu " << relu;
      }
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

}  // namespace
}  // namespace datanas
