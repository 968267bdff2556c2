// The memory a search needs, checked before it loads its data and before its first step.
#pragma once
#include <cstdint>
#include <string>

#include "search/search_options.h"

namespace datanas {

// Returns the estimated bytes of the data set; throws Error (estimate, limit, flags to change)
// when they exceed the budget of --memory-limit / MemAvailable.
uint64_t check_search_data_memory(const SearchOptions& options, const std::string& data_dir);

// Parameters (weights, gradients, momentum, a checkpoint's copy) plus one batch's feature maps;
// `data_bytes` is what the loaded data set already holds.
void check_search_step_memory(const SearchOptions& options, int64_t parameters,
                              uint64_t data_bytes);

}  // namespace datanas
