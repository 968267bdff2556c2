// Graphviz rendering of one cell, laid out like the DARTS paper figures (inputs left, output
// right). Render with: dot -Tpdf cell.dot -o cell.pdf
#include <string>
#include <vector>

#include "space/genotype.h"
#include "util/error.h"

namespace datanas {
namespace {

std::string node_name(int input) {
  if (input == 0) return "\"c_{k-2}\"";
  if (input == 1) return "\"c_{k-1}\"";
  return "\"" + std::to_string(input - 2) + "\"";
}

}  // namespace

// The recurrent cell: x_t and h_{t-1} feed s0, node j is state j + 1, h_t averages `concat`.
static std::string recurrent_dot(const Genotype& genotype) {
  std::string dot = "digraph recurrent {\n  rankdir=LR;\n";
  dot += "  node [style=\"rounded,filled\", shape=rect, align=center, fontname=times];\n";
  dot += "  edge [fontname=times];\n";
  dot += "  \"x_{t}\" [fillcolor=darkseagreen2];\n  \"h_{t-1}\" [fillcolor=darkseagreen2];\n";
  dot += "  \"0\" [fillcolor=lightblue];\n";
  dot += "  \"x_{t}\" -> \"0\" [fillcolor=gray];\n  \"h_{t-1}\" -> \"0\" [fillcolor=gray];\n";
  for (size_t j = 0; j < genotype.recurrent.size(); ++j)
    dot += "  \"" + std::to_string(j + 1) + "\" [fillcolor=lightblue];\n";
  dot += "  \"h_{t}\" [fillcolor=palegoldenrod];\n";
  for (size_t j = 0; j < genotype.recurrent.size(); ++j)
    for (const OpInput& pair : genotype.recurrent[j])
      dot += "  \"" + std::to_string(pair.input) + "\" -> \"" + std::to_string(j + 1) +
             "\" [label=\"" + pair.op + "\", fillcolor=gray];\n";
  for (int index : genotype.concat)
    dot += "  \"" + std::to_string(index) + "\" -> \"h_{t}\" [fillcolor=gray];\n";
  return dot + "}\n";
}

std::string genotype_to_dot(const Genotype& genotype, const std::string& which) {
  if (which == "recurrent" && genotype.is_recurrent()) {
    validate_genotype(genotype);
    return recurrent_dot(genotype);
  }
  if (which != "normal" && which != "reduce") {
    throw Error("genotype_to_dot: unknown cell \"" + which +
                "\" (expected normal or reduce; recurrent for darts-rnn)");
  }
  validate_genotype(genotype);
  const bool normal = which == "normal";
  const std::vector<GenotypeNode>& nodes = normal ? genotype.normal : genotype.reduce;
  const std::vector<int>& concat = normal ? genotype.normal_concat : genotype.reduce_concat;

  std::string dot = "digraph " + which + " {\n";
  dot += "  rankdir=LR;\n";
  dot += "  node [style=\"rounded,filled\", shape=rect, align=center, fontname=times];\n";
  dot += "  edge [fontname=times];\n";
  dot += "  \"c_{k-2}\" [fillcolor=darkseagreen2];\n";
  dot += "  \"c_{k-1}\" [fillcolor=darkseagreen2];\n";
  for (size_t j = 0; j < nodes.size(); ++j) {
    dot += "  " + node_name(static_cast<int>(j) + 2) + " [fillcolor=lightblue];\n";
  }
  dot += "  \"c_{k}\" [fillcolor=palegoldenrod];\n";
  for (size_t j = 0; j < nodes.size(); ++j) {
    for (const OpInput& pair : nodes[j]) {
      dot += "  " + node_name(pair.input) + " -> " + node_name(static_cast<int>(j) + 2) +
             " [label=\"" + pair.op + "\", fillcolor=gray];\n";
    }
  }
  for (int index : concat) {
    dot += "  " + node_name(index) + " -> \"c_{k}\" [fillcolor=gray];\n";
  }
  return dot + "}\n";
}

}  // namespace datanas
