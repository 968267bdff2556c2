#include "util/memory.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace datanas {
namespace {

// The first number of a one-line file ("max" and unreadable files give 0).
uint64_t read_number(const std::string& path) {
  std::ifstream in(path);
  uint64_t value = 0;
  return in >> value ? value : 0;
}

uint64_t mem_available() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    uint64_t kib = 0;
    fields >> kib;
    return kib * 1024;
  }
  return 0;
}

}  // namespace

MemoryBudget memory_budget(double limit_gib) {
  if (limit_gib > 0)
    return {static_cast<uint64_t>(limit_gib * 1024.0 * 1024.0 * 1024.0), "--memory-limit"};
  MemoryBudget budget{mem_available(), "MemAvailable"};
  const uint64_t max = read_number("/sys/fs/cgroup/memory.max");
  const uint64_t used = read_number("/sys/fs/cgroup/memory.current");
  if (max > 0 && max > used && max - used < budget.bytes)
    budget = {max - used, "cgroup memory.max"};
  return budget;
}

std::string gib_text(uint64_t bytes) {
  const double kib = bytes / 1024.0, mib = kib / 1024.0, gib = mib / 1024.0;
  char text[32];
  if (gib >= 1) std::snprintf(text, sizeof text, "%.2f GiB", gib);
  else if (mib >= 1) std::snprintf(text, sizeof text, "%.1f MiB", mib);
  else std::snprintf(text, sizeof text, "%.0f KiB", kib);
  return text;
}

void require_memory(const std::string& what, uint64_t needed, const std::string& breakdown,
                    const MemoryBudget& budget, const std::string& advice) {
  // An unreadable /proc/meminfo (budget 0) is no reason to refuse a run.
  if (budget.bytes == 0 || needed <= budget.bytes) return;
  throw Error(what + " needs about " + gib_text(needed) + " (" + breakdown + "), " +
              gib_text(budget.bytes) + " available (" + budget.source + "); " + advice);
}

uint64_t cell_network_activation_bytes(int64_t batch, int64_t image_size, int64_t init_channels,
                                       int layers, double maps_per_cell) {
  double elements = 3.0 * init_channels * image_size * image_size;  // the stem
  int64_t channels = init_channels, size = image_size;
  for (int layer = 0; layer < layers; ++layer) {
    if (layer == layers / 3 || layer == 2 * layers / 3) {
      channels *= 2;
      size = (size + 1) / 2;
    }
    elements += maps_per_cell * channels * size * size;
  }
  return static_cast<uint64_t>(2.0 * 4.0 * batch * elements);
}

}  // namespace datanas
