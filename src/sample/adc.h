// Architecture Distribution Constraint: an L1 pull of the probabilities towards the code that
// was drawn, lambda * mean |p - stopgrad(w)|, added to the architecture loss for every cell type.
// lambda = 0 switches it off.
#pragma once
#include <ATen/ATen.h>

namespace datanas {

inline at::Tensor adc_term(const at::Tensor& probs, const at::Tensor& drawn_weights) {
  return (probs - drawn_weights.detach()).abs().mean();
}

}  // namespace datanas
