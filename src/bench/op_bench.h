// `datanas bench --what ops`: forward and forward+backward time of each candidate op (and the
// cell preprocessing) at one shape, next to the time the bytes it must move take at the
// measured memory bandwidth, so the kernels furthest from the machine's limit stand out.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace datanas {

struct OpBenchOptions {
  std::vector<int64_t> shape = {64, 16, 32, 32};  // N, C, H, W of the op input
  int64_t stride = 1;
  int warmup = 2, repeats = 5;
  bool channels_last = true;
  std::vector<std::string> names;  // ops to time, by name; empty: all
};

// One JSON object per op. Keys: op, shape, stride, fwd_ms, fwd_bwd_ms, fwd_limit_ms,
// fwd_bwd_limit_ms, fwd_bwd_vs_limit, bandwidth_gbs; and the same op with --kernels native:
// native_fwd_ms, native_ms (forward+backward), native_fwd_speedup and native_speedup (LibTorch
// time / native time), native_vs_limit; both in the requested layout. Then each backend in NCHW:
// torch_nchw_ms, native_nchw_ms, and native_speedup_vs_nchw (LibTorch NCHW / native in the
// requested layout). The limit counts the unavoidable
// traffic: forward reads x and the weights and writes y; backward reads dy, x and the weights
// and writes dx and the weight gradients (fp32).
void run_op_bench(const OpBenchOptions& options,
                  const std::function<void(const nlohmann::json&)>& on_row);

}  // namespace datanas
