#include "sample/darts.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>

#include "space/ops.h"

namespace datanas {

static SamplerOptions darts_options(SamplerOptions options) {
  options.granularity = Granularity::kEdge;
  options.parametrisation = Parametrisation::kSoftmax;
  options.tau_max = options.tau_min = 1.0;
  // The derived network sums its ops with weight one, as the discrete cell does.
  options.plain_sum = true;
  return options;
}

DartsSampler::DartsSampler(SamplerOptions options, CellSpace space)
    : Sampler(darts_options(std::move(options)), space) {}

CellWeights DartsSampler::sample(const at::Tensor& alpha, at::Generator&) const {
  CellWeights result;
  result.weights = probabilities(alpha);
  result.selected.assign(space_.edges() * space_.ops, 1);
  return result;
}

std::vector<GenotypeNode> DartsSampler::derive(const at::Tensor& probs_table) const {
  at::Tensor probs = probs_table.detach().to(at::kCPU).to(at::kDouble).contiguous();
  const double* p = probs.data_ptr<double>();
  const int K = space_.ops;
  std::vector<GenotypeNode> cell(space_.nodes);
  for (int node = 0; node < space_.nodes; ++node) {
    const int inputs = space_.node_inputs(node);
    std::vector<int> best_op(inputs, -1);
    std::vector<double> strength(inputs, -1.0);
    for (int input = 0; input < inputs; ++input) {
      const int e = space_.node_edge(node, input);
      for (int k = 0; k < K; ++k) {
        if (k != kNoneOp && p[e * K + k] > strength[input]) {
          strength[input] = p[e * K + k];
          best_op[input] = k;
        }
      }
    }
    std::vector<int> order(inputs);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int a, int b) { return strength[a] > strength[b]; });
    for (int i = 0; i < std::min(space_.darts_inputs, inputs); ++i)
      cell[node].push_back({space_.names()[best_op[order[i]]], order[i]});
  }
  return cell;
}

}  // namespace datanas
