// The random-search baseline: an architecture drawn uniformly from the same space a DATA
// search explores (EGS codes under uniform probabilities, M draws per node).
#pragma once
#include <cstdint>

#include "space/genotype.h"

namespace datanas {

Genotype random_genotype(int M, uint64_t seed, int nodes = 4);

}  // namespace datanas
