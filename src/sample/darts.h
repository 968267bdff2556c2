// The DARTS continuous relaxation as a sampler: every op of an edge is weighted by its softmax
// probability; the derived cell keeps the two strongest incoming edges of each node, each with
// its best non-none op.
#pragma once
#include "sample/sampler.h"

namespace datanas {

class DartsSampler : public Sampler {
 public:
  DartsSampler(SamplerOptions options, CellSpace space);
  CellWeights sample(const at::Tensor& alpha, at::Generator& generator) const override;
  std::vector<GenotypeNode> derive(const at::Tensor& probs) const override;
};

}  // namespace datanas
