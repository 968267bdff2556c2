#include "bench/op_bench.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>

#include "bench/bench_timing.h"
#include "kernels/cpu_capability.h"
#include "space/op_blocks.h"
#include "space/ops.h"
#include "util/error.h"
#include "util/memory_format.h"

namespace datanas {
using nlohmann::json;

namespace {

struct NamedOp {
  std::string name;
  torch::nn::AnyModule module;
};

const char* const kPreprocess = "preprocess_1x1";

std::vector<std::string> all_op_names() {
  std::vector<std::string> names = cnn_op_names();
  names.push_back(kPreprocess);
  return names;
}

std::vector<NamedOp> bench_ops(const std::vector<std::string>& names, int64_t channels,
                               int64_t stride, KernelBackend kernels) {
  std::vector<NamedOp> ops;
  for (const auto& name : names) {
    if (name == kPreprocess) {
      ops.push_back(
          {name, torch::nn::AnyModule(ReLUConvBN(channels, channels, 1, 1, 0, false, kernels))});
    } else {
      ops.push_back({name, make_cnn_op(name, channels, stride, /*affine=*/false,
                                       /*pool_bn=*/true, kernels)});
    }
  }
  return ops;
}

// The requested names, each checked; all ops when none are given.
std::vector<std::string> chosen_ops(const std::vector<std::string>& requested) {
  const std::vector<std::string> all = all_op_names();
  if (requested.empty()) return all;
  for (const auto& name : requested) {
    if (std::find(all.begin(), all.end(), name) == all.end()) {
      std::string list;
      for (const auto& n : all) list += (list.empty() ? "" : ", ") + n;
      throw Error("--ops: unknown op '" + name + "'; expected some of: " + list);
    }
  }
  return requested;
}

struct OpTimes {
  at::Tensor y;
  double fwd_ms = 0, fwd_bwd_ms = 0;
};

OpTimes time_op(torch::nn::AnyModule& module, const at::Tensor& x, at::MemoryFormat format,
                const OpBenchOptions& o) {
  module.ptr()->train();
  OpTimes t;
  {
    at::NoGradGuard no_grad;
    t.y = module.forward(x);
  }
  at::Generator g = at::detail::createCPUGenerator(2);
  const at::Tensor dy = at::normal(0.0, 1.0, t.y.sizes(), g).contiguous(format);
  t.fwd_ms = median_ms(
      [&] {
        at::NoGradGuard no_grad;
        module.forward(x);
      },
      o.warmup, o.repeats);
  at::Tensor input = x.detach().requires_grad_(true);
  t.fwd_bwd_ms = median_ms(
      [&] {
        // Each repeat starts without gradients, as a training step after zero_grad(set_to_none)
        // does: otherwise autograd adds each repeat's input gradient to the last one's, a pass
        // over the input that is not the op's.
        input.mutable_grad().reset();
        for (auto& p : module.ptr()->parameters()) p.mutable_grad().reset();
        at::Tensor out = module.forward(input);
        if (out.requires_grad()) out.backward(dy);
      },
      o.warmup, o.repeats);
  return t;
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

}  // namespace

void run_op_bench(const OpBenchOptions& o, const std::function<void(const json&)>& on_row) {
  if (o.shape.size() != 4) throw Error("--shape: expected N,C,H,W (four positive integers)");
  for (int64_t d : o.shape)
    if (d <= 0) throw Error("--shape: expected N,C,H,W (four positive integers)");
  if (o.stride != 1 && o.stride != 2) throw Error("--stride: expected 1 or 2");
  const std::vector<std::string> names = chosen_ops(o.names);
  const double bandwidth = memory_bandwidth_gbs();
  std::fprintf(stderr, "bench ops: memory bandwidth %.1f GB/s\n", bandwidth);
  const auto format =
      o.channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  at::Generator g = at::detail::createCPUGenerator(1);
  const at::Tensor x = at::normal(0.0, 1.0, o.shape, g).contiguous(format);
  // Both backends in the requested layout, and each also in NCHW (LibTorch's NCHW kernels are
  // the baseline the native ones were first measured against).
  const at::Tensor x_nchw = x.contiguous();
  std::vector<NamedOp> torch_ops = bench_ops(names, o.shape[1], o.stride, KernelBackend::kTorch);
  std::vector<NamedOp> native_ops = bench_ops(names, o.shape[1], o.stride, KernelBackend::kNative);
  for (size_t k = 0; k < torch_ops.size(); ++k) {
    NamedOp& op = torch_ops[k];
    const OpTimes torch_nchw = time_op(op.module, x_nchw, at::MemoryFormat::Contiguous, o);
    const OpTimes native_nchw =
        time_op(native_ops[k].module, x_nchw, at::MemoryFormat::Contiguous, o);
    set_memory_format(*op.module.ptr(), o.channels_last);
    set_memory_format(*native_ops[k].module.ptr(), o.channels_last);
    const OpTimes reference = o.channels_last ? time_op(op.module, x, format, o) : torch_nchw;
    const OpTimes native =
        o.channels_last ? time_op(native_ops[k].module, x, format, o) : native_nchw;
    const at::Tensor& y = reference.y;
    const double fwd_ms = reference.fwd_ms, fwd_bwd_ms = reference.fwd_bwd_ms;
    const double bytes_x = 4.0 * x.numel(), bytes_y = 4.0 * y.numel();
    const double bytes_w = 4.0 * parameter_count(*op.module.ptr());
    const double fwd_bytes = bytes_x + bytes_w + bytes_y;
    const double bwd_bytes = bytes_y + bytes_x + bytes_w + bytes_x + bytes_w;
    const double to_ms = 1e3 / (bandwidth * 1e9);
    json row = {{"op", op.name},
                {"shape", o.shape},
                {"stride", o.stride},
                {"threads", at::get_num_threads()},
                {"memory_format", memory_format_name(o.channels_last)},
                {"cpu_capability", kernels::cpu_capability_name(kernels::kernel_capability())},
                {"fwd_ms", fwd_ms},
                {"fwd_bwd_ms", fwd_bwd_ms},
                {"fwd_limit_ms", fwd_bytes * to_ms},
                {"fwd_bwd_limit_ms", (fwd_bytes + bwd_bytes) * to_ms},
                {"fwd_bwd_vs_limit", fwd_bwd_ms / ((fwd_bytes + bwd_bytes) * to_ms)},
                {"native_fwd_ms", native.fwd_ms},
                {"native_ms", native.fwd_bwd_ms},
                {"native_fwd_speedup", fwd_ms / native.fwd_ms},
                {"native_speedup", fwd_bwd_ms / native.fwd_bwd_ms},
                {"native_vs_limit", native.fwd_bwd_ms / ((fwd_bytes + bwd_bytes) * to_ms)},
                {"torch_nchw_ms", torch_nchw.fwd_bwd_ms},
                {"native_nchw_ms", native_nchw.fwd_bwd_ms},
                {"native_speedup_vs_nchw", torch_nchw.fwd_bwd_ms / native.fwd_bwd_ms},
                {"bandwidth_gbs", bandwidth}};
    on_row(row);
  }
}

}  // namespace datanas
