#include "bench/bench_timing.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

namespace datanas {

double median_ms(const std::function<void()>& fn, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(times.begin(), times.end());
  const size_t n = times.size();
  return n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
}

void reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
}

double peak_rss_mb() {
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmHWM:") {
      double kib = 0;
      status >> kib;
      return kib / 1024.0;
    }
    status.ignore(1 << 12, '\n');
  }
  return 0.0;
}

double memory_bandwidth_gbs() {
  const int64_t floats = 64 << 20;  // 256 MiB each way
  at::Tensor source = at::ones({floats}), target = at::empty({floats});
  double best_ms = median_ms([&] { target.copy_(source); }, 1, 1);
  for (int i = 0; i < 4; ++i)
    best_ms = std::min(best_ms, median_ms([&] { target.copy_(source); }, 0, 1));
  const double bytes = 2.0 * floats * sizeof(float);
  return bytes / (best_ms * 1e-3) / 1e9;
}

}  // namespace datanas
