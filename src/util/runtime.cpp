#include "util/runtime.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <thread>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "util/error.h"

namespace datanas {

c10::Device parse_device(const std::string& text) {
  try {
    c10::Device device(text);
    if (device.is_cuda() && !torch::cuda::is_available())
      throw Error("--device " + text + ": this LibTorch build or machine has no CUDA device");
    if (!device.is_cpu() && !device.is_cuda())
      throw Error("--device " + text + ": expected cpu, cuda or cuda:N");
    return device;
  } catch (const c10::Error&) {
    throw Error("--device " + text + ": expected cpu, cuda or cuda:N");
  }
}

int configure_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return threads;
}

bool keep_freed_memory() {
#if defined(__GLIBC__)
  // Blocks up to 32 MiB (the most glibc's own adaptive threshold reaches on 64-bit) come from
  // the heap, and the heap is never trimmed: a search step frees gigabytes of saved maps at its
  // end and wants them all back at the next one.
  constexpr int kMmapThreshold = 32 << 20;
  return mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, -1) == 1;
#else
  return false;
#endif
}

}  // namespace datanas
