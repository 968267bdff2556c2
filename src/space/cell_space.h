// Indexing of the DARTS cell: intermediate node j (0-based) reads the two cell inputs and all
// earlier nodes, i.e. 2 + j predecessors. Edges are numbered node by node, so the edges of node
// j are [first_edge(j), first_edge(j) + inputs(j)) and edge e of that range reads input e - first.
// Architecture parameters are one (edges x ops) table per cell type in this order.
#pragma once

namespace datanas {

struct CellSpace {
  int nodes = 4;
  int ops = 8;

  static int inputs(int node) { return 2 + node; }
  static int first_edge(int node) { return node * (node + 3) / 2; }
  int edges() const { return first_edge(nodes); }
  static int edge(int node, int input) { return first_edge(node) + input; }
};

}  // namespace datanas
