// The DARTS continuous relaxation as a sampler: every op of an edge is weighted by its softmax
// probability; the derived cell keeps the space's darts_inputs strongest incoming edges of each
// node (two in the CNN cell, one in the recurrent cell), each with its best non-none op.
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
