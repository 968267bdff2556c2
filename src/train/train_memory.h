// The memory a training run needs, checked before it loads its data and before its first step.
#pragma once
#include <cstdint>

#include "space/genotype.h"
#include "train/train_options.h"

namespace datanas {

// Both splits; throws Error (estimate, limit, flags to change) when over the budget.
uint64_t check_train_data_memory(const TrainOptions& options);

void check_train_step_memory(const TrainOptions& options, const Genotype& genotype,
                             int64_t parameters, uint64_t data_bytes);

}  // namespace datanas
