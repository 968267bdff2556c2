#include "util/runtime.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <thread>

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

}  // namespace datanas
