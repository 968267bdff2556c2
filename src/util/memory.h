// Resource limits: a run estimates the memory its data set and one batch need and refuses up
// front, with the estimate and the limit, instead of being killed by the kernel halfway.
#pragma once
#include <cstdint>
#include <string>

namespace datanas {

struct MemoryBudget {
  uint64_t bytes = 0;
  std::string source;  // "--memory-limit", "MemAvailable" or "cgroup memory.max"
};

// `limit_gib` > 0: that many GiB. Otherwise the kernel's MemAvailable (/proc/meminfo), lowered
// to what the cgroup (memory.max - memory.current) still allows when that is less.
MemoryBudget memory_budget(double limit_gib);

std::string gib_text(uint64_t bytes);  // "1.25 GiB", "3.4 MiB" or "220 KiB"

// Throws Error("<what> needs about X GiB (<breakdown>), Y GiB available (<source>); <advice>")
// when `needed` exceeds the budget.
void require_memory(const std::string& what, uint64_t needed, const std::string& breakdown,
                    const MemoryBudget& budget, const std::string& advice);

// Feature maps one batch keeps for the backward pass through a cell network (DARTS layout:
// reductions at layers/3 and 2*layers/3 halve the size and double the channels), counting
// `maps_per_cell` stored maps per cell and the same again for their gradients, float32.
uint64_t cell_network_activation_bytes(int64_t batch, int64_t image_size, int64_t init_channels,
                                       int layers, double maps_per_cell);

}  // namespace datanas
