// Ensemble Gumbel-Softmax: M independent hard Gumbel-softmax draws per decision group,
// combined by element-wise max, with straight-through gradients (METHOD.md, "EGS").
#pragma once
#include "sample/sampler.h"

namespace datanas {

// Draws EGS codes for `logits` (rows x K, one decision per row): returns the straight-through
// code b (rows x K), whose forward value is binary with 1..M ones per row. `noise_uniform`
// (M x rows x K, values in (0,1)) fixes the draws; differentiable in logits.
at::Tensor egs_code(const at::Tensor& logits, const at::Tensor& noise_uniform, double tau);

// Uniform noise for egs_code, drawn from `generator` (CPU).
at::Tensor egs_noise(int M, int64_t rows, int64_t K, at::Generator& generator);

class EgsSampler : public Sampler {
 public:
  EgsSampler(SamplerOptions options, CellSpace space);
  CellWeights sample(const at::Tensor& alpha, at::Generator& generator) const override;
  std::vector<GenotypeNode> derive(const at::Tensor& probs) const override;
};

}  // namespace datanas
