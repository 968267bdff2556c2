#include "sample/egs.h"

#include <ATen/ATen.h>

#include "sample/derive.h"
#include "space/ops.h"

namespace datanas {

at::Tensor egs_noise(int M, int64_t rows, int64_t K, at::Generator& generator) {
  return at::rand({M, rows, K}, generator).clamp(1e-20, 1.0 - 1e-7);
}

at::Tensor egs_code(const at::Tensor& logits, const at::Tensor& noise_uniform, double tau) {
  at::Tensor gumbel = -at::log(-at::log(noise_uniform.to(logits.device())));
  at::Tensor soft = at::softmax((logits.unsqueeze(0) + gumbel) / tau, -1);  // M x rows x K
  at::Tensor hard = at::zeros_like(soft).scatter_(-1, soft.argmax(-1, true), 1.0);
  at::Tensor straight_through = hard - soft.detach() + soft;
  // Element-wise max over the M draws: a logical OR of the one-hot codes whose gradient flows
  // to the draw that attained the max.
  return std::get<0>(straight_through.max(0));
}

EgsSampler::EgsSampler(SamplerOptions options, CellSpace space)
    : Sampler(std::move(options), space) {}

CellWeights EgsSampler::sample(const at::Tensor& alpha, at::Generator& generator) const {
  at::Tensor logits = at::log(probabilities(alpha) + 1e-10);
  at::Tensor code;
  if (options_.granularity == Granularity::kEdge) {
    code = egs_code(logits, egs_noise(options_.M, space_.edges(), space_.ops, generator), tau_);
  } else {
    code = per_group(logits, [&](const at::Tensor& group) {
      at::Tensor noise = egs_noise(options_.M, 1, group.size(0), generator);
      return egs_code(group.unsqueeze(0), noise, tau_).squeeze(0);
    });
  }
  CellWeights result;
  result.weights = weights_from_code(code);
  at::Tensor mask = (code.detach() > 0.5).to(at::kCPU).to(at::kByte).contiguous();
  result.selected.assign(mask.data_ptr<uint8_t>(), mask.data_ptr<uint8_t>() + mask.numel());
  return result;
}

std::vector<GenotypeNode> EgsSampler::derive(const at::Tensor& probs_table) const {
  at::Tensor probs = probs_table.detach().to(at::kCPU).to(at::kDouble).contiguous();
  const double* p = probs.data_ptr<double>();
  const auto& names = space_.names();
  const int K = space_.ops;
  std::vector<GenotypeNode> cell(space_.nodes);
  for (int node = 0; node < space_.nodes; ++node) {
    // Entries of this node's decisions: (input, op) pairs, with -1 standing for merged `none`.
    struct Entry {
      int input, op;
      double p;
    };
    std::vector<std::vector<Entry>> decisions;
    std::vector<Entry> node_pairs;
    for (int input = 0; input < space_.node_inputs(node); ++input) {
      const int e = space_.node_edge(node, input);
      if (options_.granularity == Granularity::kEdge || decisions.empty())
        decisions.push_back({{-1, kNoneOp, 0.0}});
      for (int k = 0; k < K; ++k) {
        if (k == kNoneOp) {
          decisions.back().front().p += p[e * K + k];
          continue;
        }
        decisions.back().push_back({input, k, p[e * K + k]});
        node_pairs.push_back({input, k, p[e * K + k]});
      }
    }
    std::vector<Entry> kept;
    for (const auto& entries : decisions) {
      std::vector<double> values;
      for (const Entry& entry : entries) values.push_back(entry.p);
      for (int index : most_probable_support(values, options_.M))
        if (entries[index].input >= 0) kept.push_back(entries[index]);
    }
    if (kept.empty()) {  // a node needs an op: take its most probable non-none pair
      kept.push_back(*std::max_element(node_pairs.begin(), node_pairs.end(),
                                       [](const Entry& a, const Entry& b) { return a.p < b.p; }));
    }
    std::stable_sort(kept.begin(), kept.end(),
                     [](const Entry& a, const Entry& b) { return a.p > b.p; });
    for (const Entry& entry : kept) cell[node].push_back({names[entry.op], entry.input});
  }
  return cell;
}

}  // namespace datanas
