// One architecture of the cell space as the supernet consumes it: the op weights of every
// (edge, op) entry and which entries are selected. Samplers produce it, supernets read it.
#pragma once
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace datanas {

struct CellWeights {
  at::Tensor weights;             // (edges x ops) float; may carry straight-through gradients
  std::vector<uint8_t> selected;  // edges * ops, row-major; 1 = the op is part of the code
  bool is_selected(int edge, int op, int ops) const { return selected[edge * ops + op] != 0; }
};

// How the supernet evaluates the ops of an edge.
enum class ExecMode {
  kDense,         // every op, full autograd: the reference (authors' behaviour)
  kSelected,      // only selected ops (weight step and evaluation; exact, since others weigh 0)
  kArchitecture,  // selected ops with autograd, unselected ones forward-only (no graph), so the
                  // straight-through gradient <dL/dout, o_k> reaches every alpha entry
};

}  // namespace datanas
