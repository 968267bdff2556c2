// Indexing of a DARTS-style cell. Intermediate node j (0-based) reads the cell's `leading`
// inputs and all earlier nodes, i.e. leading + j predecessors: the CNN cell has two leading
// inputs (c_{k-2}, c_{k-1}), the recurrent cell one (s0, computed from x_t and h_{t-1}).
// Edges are numbered node by node, so the edges of node j are [node_first_edge(j),
// node_first_edge(j) + node_inputs(j)) and edge e of that range reads input
// e - node_first_edge(j). Architecture parameters
// are one (edges x ops) table per cell type in this order; op 0 is always `none`.
#pragma once
#include <string>
#include <vector>

namespace datanas {

struct CellSpace {
  CellSpace() = default;
  CellSpace(int nodes, int ops) : nodes(nodes), ops(ops) {}  // the CNN layout

  int nodes = 4;
  int ops = 8;
  int leading = 2;
  // Op names, `none` first; empty means the DARTS CNN ops (cnn_op_names()).
  std::vector<std::string> op_names;
  // Inputs per node that the DARTS derivation keeps (2 in the CNN, 1 in the recurrent cell).
  int darts_inputs = 2;

  // Any layout: node j has leading + j inputs.
  int node_inputs(int node) const { return leading + node; }
  int node_first_edge(int node) const { return node * leading + node * (node - 1) / 2; }
  int node_edge(int node, int input) const { return node_first_edge(node) + input; }
  int edges() const { return node_first_edge(nodes); }
  // The CNN layout (leading = 2), static for the CNN code that indexes without a space.
  static int inputs(int node) { return 2 + node; }
  static int first_edge(int node) { return node * (node + 3) / 2; }
  static int edge(int node, int input) { return first_edge(node) + input; }
  const std::vector<std::string>& names() const;  // op_names or the CNN ops
  int op_index(const std::string& name) const;    // -1 when unknown
};

// The DARTS CNN cell (8 ops, two leading inputs) and the DARTS recurrent cell (5 ops, s0 as
// the one leading input).
CellSpace cnn_cell_space(int nodes);
CellSpace rnn_cell_space(int nodes);

}  // namespace datanas
