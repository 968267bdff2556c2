// A discrete cell architecture: for every intermediate node, the list of (op, input) pairs it
// sums. Space "darts-cnn": input 0 is c_{k-2}, 1 is c_{k-1}, 2 + j is intermediate node j.
// Space "darts-rnn": one cell, `recurrent`, input 0 is s0 and 1 + j is node j. Nodes may hold
// any number of pairs (DARTS uses two in the CNN, one in the RNN); pairs may share an input.
// Serialised as datanas-genotype/1 JSON; also drawn as Graphviz DOT.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace datanas {

struct OpInput {
  std::string op;
  int input = 0;
  bool operator==(const OpInput& other) const { return op == other.op && input == other.input; }
};

using GenotypeNode = std::vector<OpInput>;

struct Genotype {
  std::string space = "darts-cnn";
  std::vector<GenotypeNode> normal;
  std::vector<int> normal_concat;
  std::vector<GenotypeNode> reduce;
  std::vector<int> reduce_concat;
  // Space "darts-rnn": the recurrent cell's nodes (input 0 is s0, j >= 1 is node j - 1's
  // state) and the states averaged into the cell output (DARTS: 1..8).
  std::vector<GenotypeNode> recurrent;
  std::vector<int> concat;
  bool is_recurrent() const { return space == "darts-rnn"; }
  bool operator==(const Genotype& other) const;
};

// Throws Error naming `source` (a file name or "genotype") when the genotype is invalid:
// unknown space or op, input index out of range for its node, empty cell or node, bad concat.
void validate_genotype(const Genotype& genotype, const std::string& source = "genotype");

std::string genotype_to_json(const Genotype& genotype);  // one line, keys in the fixed order
Genotype genotype_from_json(const std::string& text, const std::string& source = "genotype");

// `file_or_name` is a path to a JSON file or a built-in name (DARTS_V1, DARTS_V2, DATA_M4,
// DATA_M7; recurrent: DARTS_RNN, DARTS_RNN_V1). Throws Error naming the file/name and what was
// expected.
Genotype load_genotype(const std::string& file_or_name);
void save_genotype(const std::string& path, const Genotype& genotype);  // atomic

// Graphviz DOT of one cell, `which` is "normal" or "reduce".
std::string genotype_to_dot(const Genotype& genotype, const std::string& which);

const std::map<std::string, Genotype>& builtin_genotypes();

// The DARTS CNN op names, `none` first (also declared in space/ops.h). Defined in op_names.cpp,
// which needs no LibTorch, so genotype code links without the op implementations.
const std::vector<std::string>& cnn_op_names();
int cnn_op_index(const std::string& name);  // -1 when unknown

}  // namespace datanas
