#include "space/cell_space.h"

#include "space/genotype.h"
#include "space/rnn_op_names.h"

namespace datanas {

const std::vector<std::string>& CellSpace::names() const {
  return op_names.empty() ? cnn_op_names() : op_names;
}

int CellSpace::op_index(const std::string& name) const {
  const std::vector<std::string>& all = names();
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i] == name) return static_cast<int>(i);
  return -1;
}

CellSpace cnn_cell_space(int nodes) { return CellSpace{nodes, 8}; }

CellSpace rnn_cell_space(int nodes) {
  CellSpace space;
  space.nodes = nodes;
  space.op_names = rnn_op_names();
  space.ops = static_cast<int>(space.op_names.size());
  space.leading = 1;
  space.darts_inputs = 1;
  return space;
}

}  // namespace datanas
