// Measurement helpers of `datanas bench`: wall-clock medians, the process's peak resident set
// and the machine's memory bandwidth.
#pragma once
#include <functional>

namespace datanas {

// Runs `fn` `warmup` times untimed, then `repeats` times; the median wall time in ms.
double median_ms(const std::function<void()>& fn, int warmup, int repeats);

// Peak resident set size since the last reset_peak_rss() (or process start), in MiB.
// Linux: VmHWM from /proc/self/status, reset through /proc/self/clear_refs.
void reset_peak_rss();
double peak_rss_mb();

// Sustained copy bandwidth (bytes read + bytes written per second, in GB/s) of a buffer far
// larger than the caches, best of a few runs, with the current thread count.
double memory_bandwidth_gbs();

}  // namespace datanas
