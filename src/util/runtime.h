// Process-wide runtime settings: compute device, thread count, allocator.
#pragma once
#include <c10/core/Device.h>

#include <string>

namespace datanas {

// "cpu", "cuda" or "cuda:N"; throws Error naming --device when unknown or unavailable.
c10::Device parse_device(const std::string& text);

// Sets LibTorch's intra-op threads (0 = all cores) and returns the count in use.
int configure_threads(int threads);

// Keeps freed tensor memory in the process (glibc malloc; elsewhere a no-op that returns false).
// By default glibc returns every large block to the kernel on free, so each step's feature maps
// are page-faulted and zeroed afresh: a quarter of a kernel's time in a fwd+bwd. Returns whether
// the allocator took the settings. Call once, before any tensor is made.
bool keep_freed_memory();

}  // namespace datanas
