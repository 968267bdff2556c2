#include "sample/egs_statistics.h"

#include <ATen/ATen.h>

#include "sample/egs.h"
#include "util/error.h"

namespace datanas {

EgsStatistics egs_statistics(const std::vector<double>& probs, int M, int64_t draws,
                             uint64_t seed, double tau) {
  if (probs.empty()) throw Error("--probs: expected at least one probability");
  double sum = 0;
  for (double p : probs) {
    if (!(p >= 0)) throw Error("--probs: expected non-negative numbers");
    sum += p;
  }
  if (sum <= 0) throw Error("--probs: expected a positive sum");
  if (M < 1) throw Error("--M: expected >= 1");
  if (draws < 1) throw Error("--draws: expected >= 1");
  if (tau <= 0) throw Error("--tau: expected > 0");
  const int64_t K = probs.size();
  at::Tensor p = at::tensor(probs, at::kDouble).to(at::kFloat) / sum;
  at::Tensor logits = at::log(p + 1e-10).expand({std::min<int64_t>(draws, 1 << 16), K});
  at::Generator generator = at::detail::createCPUGenerator(seed);
  at::Tensor selected_count = at::zeros({K}, at::kDouble);
  at::Tensor size_count = at::zeros({K + 1}, at::kDouble);
  for (int64_t done = 0; done < draws;) {
    const int64_t chunk = std::min<int64_t>(draws - done, logits.size(0));
    at::Tensor code = egs_code(logits.slice(0, 0, chunk), egs_noise(M, chunk, K, generator), tau);
    at::Tensor binary = (code > 0.5).to(at::kDouble);
    selected_count += binary.sum(0);
    size_count.index_add_(0, binary.sum(1).to(at::kLong), at::ones({chunk}, at::kDouble));
    done += chunk;
  }
  EgsStatistics stats;
  for (int64_t k = 0; k < K; ++k) stats.marginal.push_back(selected_count[k].item<double>() / draws);
  for (int64_t s = 0; s <= K; ++s) stats.support_size.push_back(size_count[s].item<double>() / draws);
  return stats;
}

}  // namespace datanas
