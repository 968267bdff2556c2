// Empirical statistics of EGS codes for one decision: how often each entry is selected and how
// many entries a code holds. This is how the estimator is checked against 1 - (1 - p)^M.
#pragma once
#include <cstdint>
#include <vector>

namespace datanas {

struct EgsStatistics {
  std::vector<double> marginal;      // marginal[k]: fraction of draws that selected entry k
  std::vector<double> support_size;  // support_size[s]: fraction with exactly s entries, s=0..K
};

// `probs` must be non-negative with a positive sum (normalised here). Throws Error otherwise.
EgsStatistics egs_statistics(const std::vector<double>& probs, int M, int64_t draws,
                             uint64_t seed, double tau = 1.0);

}  // namespace datanas
