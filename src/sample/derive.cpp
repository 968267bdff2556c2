#include "sample/derive.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "util/error.h"

namespace datanas {

double exact_support_probability(const std::vector<double>& set_probs, int M) {
  const size_t t = set_probs.size();
  if (t > 20) throw Error("exact_support_probability: set too large");
  double total = 0.0;
  for (uint32_t subset = 0; subset < (1u << t); ++subset) {
    double mass = 0.0;
    int members = 0;
    for (size_t i = 0; i < t; ++i) {
      if (subset & (1u << i)) {
        mass += set_probs[i];
        ++members;
      }
    }
    const double sign = ((t - members) % 2 == 0) ? 1.0 : -1.0;
    total += sign * std::pow(mass, M);
  }
  return total;
}

std::vector<int> most_probable_support(const std::vector<double>& probs, int M) {
  std::vector<double> clipped(probs.size());
  std::transform(probs.begin(), probs.end(), clipped.begin(),
                 [](double p) { return std::max(0.0, p); });
  const double sum = std::accumulate(clipped.begin(), clipped.end(), 0.0);
  std::vector<int> order(probs.size());
  std::iota(order.begin(), order.end(), 0);
  if (order.empty()) return order;
  if (sum <= 0.0) return {order.front()};
  for (double& p : clipped) p /= sum;
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return clipped[a] > clipped[b]; });
  const int largest = std::min<int>(M, static_cast<int>(order.size()));
  int best_t = 1;
  double best_probability = -1.0;
  std::vector<double> top;
  for (int t = 1; t <= largest; ++t) {
    top.push_back(clipped[order[t - 1]]);
    const double probability = exact_support_probability(top, M);
    if (probability > best_probability + 1e-15) {
      best_probability = probability;
      best_t = t;
    }
  }
  order.resize(best_t);
  return order;
}

}  // namespace datanas
