// Process-wide runtime settings taken from flags: compute device and thread count.
#pragma once
#include <string>

#include <c10/core/Device.h>

namespace datanas {

// "cpu", "cuda" or "cuda:N"; throws Error naming --device when unknown or unavailable.
c10::Device parse_device(const std::string& text);

// Sets LibTorch's intra-op threads (0 = all cores) and returns the count in use.
int configure_threads(int threads);

}  // namespace datanas
