#include "space/genotype.h"

#include <climits>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "space/cell_space.h"
#include "space/rnn_ops.h"
#include "util/error.h"
#include "util/files.h"

namespace datanas {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "datanas-genotype/1";
constexpr const char* kSpace = "darts-cnn";
constexpr const char* kRnnSpace = "darts-rnn";
constexpr const char* kKeys = "format, space, normal, normal_concat, reduce, reduce_concat";
constexpr const char* kRnnKeys = "format, space, recurrent, concat";

// JSON-quoted, so odd characters cannot break the one-line message or the output file.
std::string quoted(const std::string& text) {
  return json(text).dump(-1, ' ', false, json::error_handler_t::replace);
}

// A short one-line rendering of a JSON value for error messages.
std::string describe(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

std::string valid_op_list(const CellSpace& space) {
  std::string list;
  const std::vector<std::string>& names = space.names();
  for (size_t i = 1; i < names.size(); ++i) list += (i > 1 ? ", " : "") + names[i];
  return list;
}

std::string range_text(int low, int high) {
  return std::to_string(low) + ".." + std::to_string(high);
}

// Node j reads inputs 0..leading + j - 1; the concat lists node indices leading..
void validate_cell(const std::vector<GenotypeNode>& nodes, const std::vector<int>& concat,
                   const std::string& cell, const std::string& source, const CellSpace& space) {
  const int leading = space.leading;
  const std::string concat_key = cell == "recurrent" ? "concat" : cell + "_concat";
  const int node_count = static_cast<int>(nodes.size());
  if (nodes.empty()) {
    throw Error(source + ": " + cell + " cell has no nodes (expected at least one node)");
  }
  for (int j = 0; j < node_count; ++j) {
    const std::string node_where = source + ": " + cell + " node " + std::to_string(j);
    if (nodes[j].empty()) {
      throw Error(node_where + " is empty (expected at least one [op, input] pair)");
    }
    for (size_t p = 0; p < nodes[j].size(); ++p) {
      const OpInput& pair = nodes[j][p];
      const std::string where = node_where + " pair " + std::to_string(p);
      const int op = space.op_index(pair.op);
      if (op == 0) {
        throw Error(where + ": op \"none\" is not allowed in a genotype (expected one of " +
                    valid_op_list(space) + ")");
      }
      if (op < 0) {
        throw Error(where + ": unknown op " + quoted(pair.op) + " (expected one of " +
                    valid_op_list(space) + ")");
      }
      if (pair.input < 0 || pair.input > j + leading - 1) {
        throw Error(where + ": input " + std::to_string(pair.input) + " out of range (expected " +
                    range_text(0, j + leading - 1) + ")");
      }
    }
  }
  const std::string concat_where = source + ": " + concat_key;
  const std::string expected =
      "(expected node indices in " + range_text(leading, node_count + leading - 1) + ")";
  if (concat.empty()) throw Error(concat_where + " is empty " + expected);
  std::set<int> seen;
  for (int index : concat) {
    if (index < leading || index > node_count + leading - 1) {
      throw Error(concat_where + ": " + std::to_string(index) + " out of range " + expected);
    }
    if (!seen.insert(index).second) {
      throw Error(concat_where + ": " + std::to_string(index) + " listed twice " + expected);
    }
  }
}

int parse_int(const json& value, const std::string& where, const std::string& what) {
  if (!value.is_number_integer()) {
    throw Error(where + ": " + what + " must be an integer, got " + describe(value));
  }
  const bool fits =
      value.is_number_unsigned()
          ? value.get<std::uint64_t>() <= static_cast<std::uint64_t>(INT_MAX)
          : value.get<std::int64_t>() >= INT_MIN && value.get<std::int64_t>() <= INT_MAX;
  if (!fits) throw Error(where + ": " + what + " " + describe(value) + " is out of range");
  return static_cast<int>(value.get<std::int64_t>());
}

const json& require_key(const json& root, const char* key, const std::string& source,
                        const std::string& expected) {
  auto it = root.find(key);
  if (it == root.end()) {
    throw Error(source + ": missing key \"" + key + "\" (expected " + expected + ")");
  }
  return *it;
}

std::vector<GenotypeNode> parse_cell(const json& root, const std::string& cell,
                                     const std::string& source) {
  const json& nodes = require_key(root, cell.c_str(), source, "a list of nodes");
  if (!nodes.is_array()) {
    throw Error(source + ": " + cell +
                " must be a list of nodes [[[\"op\", input], ...], ...], got " + describe(nodes));
  }
  std::vector<GenotypeNode> result;
  for (size_t j = 0; j < nodes.size(); ++j) {
    const std::string node_where = source + ": " + cell + " node " + std::to_string(j);
    if (!nodes[j].is_array()) {
      throw Error(node_where + ": expected a list of [op, input] pairs, got " + describe(nodes[j]));
    }
    GenotypeNode node;
    for (size_t p = 0; p < nodes[j].size(); ++p) {
      const json& pair = nodes[j][p];
      const std::string where = node_where + " pair " + std::to_string(p);
      if (!pair.is_array() || pair.size() != 2) {
        throw Error(where + ": expected [op_name, input_index], got " + describe(pair));
      }
      if (!pair[0].is_string()) {
        throw Error(where + ": op name must be a string, got " + describe(pair[0]));
      }
      node.push_back({pair[0].get<std::string>(), parse_int(pair[1], where, "input")});
    }
    result.push_back(std::move(node));
  }
  return result;
}

std::vector<int> parse_concat(const json& root, const std::string& key, const std::string& source) {
  const json& list = require_key(root, key.c_str(), source, "a list of node indices");
  if (!list.is_array()) {
    throw Error(source + ": " + key + " must be a list of node indices, got " + describe(list));
  }
  std::vector<int> result;
  for (size_t i = 0; i < list.size(); ++i) {
    result.push_back(
        parse_int(list[i], source + ": " + key + " entry " + std::to_string(i), "node index"));
  }
  return result;
}

std::string cell_to_json(const std::vector<GenotypeNode>& nodes) {
  std::string out = "[";
  for (size_t j = 0; j < nodes.size(); ++j) {
    out += j ? ", [" : "[";
    for (size_t p = 0; p < nodes[j].size(); ++p) {
      out += (p ? ", [" : "[") + quoted(nodes[j][p].op) + ", " + std::to_string(nodes[j][p].input) +
             "]";
    }
    out += "]";
  }
  return out + "]";
}

std::string concat_to_json(const std::vector<int>& concat) {
  std::string out = "[";
  for (size_t i = 0; i < concat.size(); ++i) out += (i ? ", " : "") + std::to_string(concat[i]);
  return out + "]";
}

// DARTS genotypes.py lists two (op, input) pairs per node, flattened.
Genotype darts_genotype(const std::vector<OpInput>& normal, const std::vector<OpInput>& reduce) {
  Genotype genotype;
  for (size_t i = 0; i + 1 < normal.size(); i += 2)
    genotype.normal.push_back({normal[i], normal[i + 1]});
  for (size_t i = 0; i + 1 < reduce.size(); i += 2)
    genotype.reduce.push_back({reduce[i], reduce[i + 1]});
  genotype.normal_concat = genotype.reduce_concat = {2, 3, 4, 5};
  return genotype;
}

Genotype data_genotype(std::vector<GenotypeNode> normal, std::vector<GenotypeNode> reduce) {
  Genotype genotype;
  genotype.normal = std::move(normal);
  genotype.reduce = std::move(reduce);
  genotype.normal_concat = genotype.reduce_concat = {2, 3, 4, 5};
  return genotype;
}

std::map<std::string, Genotype> make_builtins() {
  std::map<std::string, Genotype> builtins;
  // clang-format off
  // quark0/darts cnn/genotypes.py, verbatim.
  builtins["DARTS_V1"] = darts_genotype(
      {{"sep_conv_3x3", 1}, {"sep_conv_3x3", 0}, {"skip_connect", 0}, {"sep_conv_3x3", 1},
       {"skip_connect", 0}, {"sep_conv_3x3", 1}, {"sep_conv_3x3", 0}, {"skip_connect", 2}},
      {{"max_pool_3x3", 0}, {"max_pool_3x3", 1}, {"skip_connect", 2}, {"max_pool_3x3", 0},
       {"max_pool_3x3", 0}, {"skip_connect", 2}, {"skip_connect", 2}, {"avg_pool_3x3", 0}});
  builtins["DARTS_V2"] = darts_genotype(
      {{"sep_conv_3x3", 0}, {"sep_conv_3x3", 1}, {"sep_conv_3x3", 0}, {"sep_conv_3x3", 1},
       {"sep_conv_3x3", 1}, {"skip_connect", 0}, {"skip_connect", 0}, {"dil_conv_3x3", 2}},
      {{"max_pool_3x3", 0}, {"max_pool_3x3", 1}, {"skip_connect", 2}, {"max_pool_3x3", 1},
       {"max_pool_3x3", 0}, {"skip_connect", 2}, {"skip_connect", 2}, {"max_pool_3x3", 1}});
  // The project's shipped cells/DATA_M4.json and cells/DATA_M7.json.
  builtins["DATA_M4"] = data_genotype(
      {{{"skip_connect", 0}, {"sep_conv_3x3", 1}, {"skip_connect", 1}},
       {{"skip_connect", 1}, {"skip_connect", 2}, {"sep_conv_3x3", 2}},
       {{"sep_conv_3x3", 3}, {"skip_connect", 1}, {"skip_connect", 2}},
       {{"dil_conv_3x3", 2}, {"skip_connect", 2}, {"sep_conv_3x3", 4}}},
      {{{"skip_connect", 0}, {"max_pool_3x3", 1}, {"dil_conv_3x3", 1}},
       {{"max_pool_3x3", 0}, {"dil_conv_3x3", 2}},
       {{"skip_connect", 0}, {"skip_connect", 1}, {"sep_conv_3x3", 3}},
       {{"skip_connect", 1}, {"dil_conv_3x3", 1}, {"sep_conv_3x3", 3}, {"dil_conv_3x3", 4}}});
  builtins["DATA_M7"] = data_genotype(
      {{{"skip_connect", 0}, {"sep_conv_3x3", 0}, {"skip_connect", 1}, {"sep_conv_3x3", 1}},
       {{"skip_connect", 0}, {"max_pool_3x3", 1}, {"skip_connect", 1}, {"sep_conv_3x3", 2}},
       {{"skip_connect", 0}, {"skip_connect", 1}, {"avg_pool_3x3", 1}, {"dil_conv_3x3", 3},
        {"skip_connect", 3}},
       {{"skip_connect", 1}, {"sep_conv_3x3", 2}, {"skip_connect", 4}}},
      {{{"sep_conv_3x3", 0}, {"max_pool_3x3", 1}, {"skip_connect", 1}},
       {{"sep_conv_3x3", 0}, {"dil_conv_3x3", 1}, {"skip_connect", 1}, {"dil_conv_3x3", 2},
        {"skip_connect", 2}},
       {{"dil_conv_3x3", 1}, {"skip_connect", 2}, {"dil_conv_3x3", 2}, {"sep_conv_3x3", 2},
        {"dil_conv_3x3", 3}, {"skip_connect", 3}},
       {{"skip_connect", 0}, {"sep_conv_3x3", 0}, {"skip_connect", 2}, {"skip_connect", 3}}});
  // quark0/darts rnn/genotypes.py: DARTS_V2 (the paper's cell, `DARTS` there) and DARTS_V1.
  auto rnn = [](std::vector<OpInput> pairs) {
    Genotype genotype;
    genotype.space = kRnnSpace;
    for (const OpInput& pair : pairs) genotype.recurrent.push_back({pair});
    for (int i = 1; i <= static_cast<int>(pairs.size()); ++i) genotype.concat.push_back(i);
    return genotype;
  };
  builtins["DARTS_RNN"] = rnn({{"sigmoid", 0}, {"relu", 1}, {"relu", 1}, {"identity", 1},
                               {"tanh", 2}, {"sigmoid", 5}, {"tanh", 3}, {"relu", 5}});
  builtins["DARTS_RNN_V1"] = rnn({{"relu", 0}, {"relu", 1}, {"tanh", 2}, {"relu", 3},
                                  {"relu", 4}, {"identity", 1}, {"relu", 5}, {"relu", 1}});
  // clang-format on
  return builtins;
}

}  // namespace

bool Genotype::operator==(const Genotype& other) const {
  return space == other.space && normal == other.normal && normal_concat == other.normal_concat &&
         reduce == other.reduce && reduce_concat == other.reduce_concat &&
         recurrent == other.recurrent && concat == other.concat;
}

void validate_genotype(const Genotype& genotype, const std::string& source) {
  if (genotype.space == kRnnSpace) {
    validate_cell(genotype.recurrent, genotype.concat, "recurrent", source,
                  rnn_cell_space(static_cast<int>(genotype.recurrent.size())));
    return;
  }
  if (genotype.space != kSpace) {
    throw Error(source + ": unknown space " + quoted(genotype.space) + " (expected \"" + kSpace +
                "\" or \"" + kRnnSpace + "\")");
  }
  const CellSpace space = cnn_cell_space(static_cast<int>(genotype.normal.size()));
  validate_cell(genotype.normal, genotype.normal_concat, "normal", source, space);
  validate_cell(genotype.reduce, genotype.reduce_concat, "reduce", source, space);
}

std::string genotype_to_json(const Genotype& genotype) {
  if (genotype.space == kRnnSpace) {
    return std::string("{\"format\": \"") + kFormat + "\", \"space\": " + quoted(genotype.space) +
           ", \"recurrent\": " + cell_to_json(genotype.recurrent) +
           ", \"concat\": " + concat_to_json(genotype.concat) + "}";
  }
  return std::string("{\"format\": \"") + kFormat + "\", \"space\": " + quoted(genotype.space) +
         ", \"normal\": " + cell_to_json(genotype.normal) +
         ", \"normal_concat\": " + concat_to_json(genotype.normal_concat) +
         ", \"reduce\": " + cell_to_json(genotype.reduce) +
         ", \"reduce_concat\": " + concat_to_json(genotype.reduce_concat) + "}";
}

Genotype genotype_from_json(const std::string& text, const std::string& source) {
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for a number too large for a double (found by fuzzing).
    std::string detail = e.what();
    const size_t end = detail.find("] ");
    if (detail.rfind("[json.exception", 0) == 0 && end != std::string::npos) {
      detail = detail.substr(end + 2);
    }
    for (char& c : detail) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    throw Error(source + ": invalid JSON (" + detail + ")");
  }
  if (!root.is_object()) {
    throw Error(source + ": expected a JSON object with keys " + kKeys + ", got " + describe(root));
  }
  const bool rnn = root.contains("space") && root["space"] == kRnnSpace;
  static const std::set<std::string> known = {"format",        "space",  "normal",
                                              "normal_concat", "reduce", "reduce_concat"};
  static const std::set<std::string> known_rnn = {"format", "space", "recurrent", "concat"};
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (!(rnn ? known_rnn : known).count(it.key())) {
      throw Error(source + ": unknown key " + quoted(it.key()) + " (expected " +
                  (rnn ? kRnnKeys : kKeys) + ")");
    }
  }
  const std::string expected_format = std::string("\"") + kFormat + "\"";
  const json& format = require_key(root, "format", source, expected_format);
  if (!format.is_string() || format.get<std::string>() != kFormat) {
    throw Error(source + ": format " + describe(format) + " is not supported (expected " +
                expected_format + ")");
  }
  const json& space = require_key(root, "space", source, std::string("\"") + kSpace + "\"");
  if (!space.is_string()) {
    throw Error(source + ": space must be a string (expected \"" + kSpace + "\"), got " +
                describe(space));
  }
  Genotype genotype;
  genotype.space = space.get<std::string>();
  if (rnn) {
    genotype.recurrent = parse_cell(root, "recurrent", source);
    genotype.concat = parse_concat(root, "concat", source);
    validate_genotype(genotype, source);
    return genotype;
  }
  genotype.normal = parse_cell(root, "normal", source);
  genotype.normal_concat = parse_concat(root, "normal_concat", source);
  genotype.reduce = parse_cell(root, "reduce", source);
  genotype.reduce_concat = parse_concat(root, "reduce_concat", source);
  validate_genotype(genotype, source);
  return genotype;
}

Genotype load_genotype(const std::string& file_or_name) {
  const std::map<std::string, Genotype>& builtins = builtin_genotypes();
  auto it = builtins.find(file_or_name);
  if (it != builtins.end()) return it->second;
  if (!file_or_name.empty() && file_exists(file_or_name)) {
    return genotype_from_json(read_text_file(file_or_name), file_or_name);
  }
  std::string names;
  for (const auto& entry : builtins) names += (names.empty() ? "" : ", ") + entry.first;
  throw Error((file_or_name.empty() ? std::string("\"\"") : file_or_name) +
              ": no such file and not a built-in genotype (built-ins: " + names + ")");
}

void save_genotype(const std::string& path, const Genotype& genotype) {
  validate_genotype(genotype, path);
  write_file_atomic(path, genotype_to_json(genotype) + "\n");
}

const std::map<std::string, Genotype>& builtin_genotypes() {
  static const std::map<std::string, Genotype> builtins = make_builtins();
  return builtins;
}

}  // namespace datanas
