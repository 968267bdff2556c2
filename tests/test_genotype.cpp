#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "space/genotype.h"
#include "util/error.h"
#include "util/files.h"

namespace datanas {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Byte-exact copies of the shipped cells/DATA_M4.json and cells/DATA_M7.json.
const char* const kDataM4Text =
    R"({"format": "datanas-genotype/1", "space": "darts-cnn", "normal": [[["skip_connect", )"
    R"(0], ["sep_conv_3x3", 1], ["skip_connect", 1]], [["skip_connect", 1], )"
    R"(["skip_connect", 2], ["sep_conv_3x3", 2]], [["sep_conv_3x3", 3], ["skip_connect", )"
    R"(1], ["skip_connect", 2]], [["dil_conv_3x3", 2], ["skip_connect", 2], )"
    R"(["sep_conv_3x3", 4]]], "normal_concat": [2, 3, 4, 5], "reduce": [[["skip_connect", )"
    R"(0], ["max_pool_3x3", 1], ["dil_conv_3x3", 1]], [["max_pool_3x3", 0], )"
    R"(["dil_conv_3x3", 2]], [["skip_connect", 0], ["skip_connect", 1], ["sep_conv_3x3", )"
    R"(3]], [["skip_connect", 1], ["dil_conv_3x3", 1], ["sep_conv_3x3", 3], )"
    R"(["dil_conv_3x3", 4]]], "reduce_concat": [2, 3, 4, 5]})";
const char* const kDataM7Text =
    R"({"format": "datanas-genotype/1", "space": "darts-cnn", "normal": [[["skip_connect", )"
    R"(0], ["sep_conv_3x3", 0], ["skip_connect", 1], ["sep_conv_3x3", 1]], )"
    R"([["skip_connect", 0], ["max_pool_3x3", 1], ["skip_connect", 1], ["sep_conv_3x3", )"
    R"(2]], [["skip_connect", 0], ["skip_connect", 1], ["avg_pool_3x3", 1], )"
    R"(["dil_conv_3x3", 3], ["skip_connect", 3]], [["skip_connect", 1], ["sep_conv_3x3", )"
    R"(2], ["skip_connect", 4]]], "normal_concat": [2, 3, 4, 5], "reduce": )"
    R"([[["sep_conv_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 1]], [["sep_conv_3x3", )"
    R"(0], ["dil_conv_3x3", 1], ["skip_connect", 1], ["dil_conv_3x3", 2], ["skip_connect", )"
    R"(2]], [["dil_conv_3x3", 1], ["skip_connect", 2], ["dil_conv_3x3", 2], )"
    R"(["sep_conv_3x3", 2], ["dil_conv_3x3", 3], ["skip_connect", 3]], [["skip_connect", )"
    R"(0], ["sep_conv_3x3", 0], ["skip_connect", 2], ["skip_connect", 3]]], )"
    R"("reduce_concat": [2, 3, 4, 5]})";

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no datanas::Error thrown>";
}

// Parses `text` as g.json and expects a one-line Error naming g.json and containing `needle`.
void expect_rejected(const std::string& text, const std::string& needle) {
  const std::string message = error_of([&] { genotype_from_json(text, "g.json"); });
  EXPECT_NE(message.find(needle), std::string::npos) << "message: " << message;
  EXPECT_EQ(message.rfind("g.json: ", 0), 0u) << "message: " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "message: " << message;
}

// DARTS_V2 as parsed JSON, for tests that break one field of a valid genotype.
json valid_json() { return json::parse(genotype_to_json(builtin_genotypes().at("DARTS_V2"))); }

void expect_rejected(const std::function<void(json&)>& mutate, const std::string& needle) {
  json root = valid_json();
  mutate(root);
  expect_rejected(root.dump(), needle);
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("datanas_genotype_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path path_;
};

}  // namespace

TEST(OpNames, OrderAndLookup) {
  const std::vector<std::string> expected = {"none",         "max_pool_3x3", "avg_pool_3x3",
                                             "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                                             "dil_conv_3x3", "dil_conv_5x5"};
  EXPECT_EQ(cnn_op_names(), expected);
  EXPECT_EQ(cnn_op_index("none"), 0);
  EXPECT_EQ(cnn_op_index("dil_conv_5x5"), 7);
  EXPECT_EQ(cnn_op_index("conv_7x7"), -1);
}

TEST(Genotype, BuiltinsAreValidAndRoundTrip) {
  const auto& builtins = builtin_genotypes();
  ASSERT_EQ(builtins.size(), 6u);
  for (const auto& [name, genotype] : builtins) {
    SCOPED_TRACE(name);
    EXPECT_NO_THROW(validate_genotype(genotype, name));
    const std::string text = genotype_to_json(genotype);
    EXPECT_EQ(text.find('\n'), std::string::npos);
    EXPECT_EQ(genotype_from_json(text, name), genotype);
    EXPECT_EQ(load_genotype(name), genotype);
  }
}

TEST(Genotype, ShippedFilesRoundTripByteForByte) {
  const std::vector<std::pair<std::string, std::string>> shipped = {{"DATA_M4", kDataM4Text},
                                                                    {"DATA_M7", kDataM7Text}};
  for (const auto& [name, text] : shipped) {
    SCOPED_TRACE(name);
    const Genotype parsed = genotype_from_json(text, name + ".json");
    EXPECT_EQ(genotype_to_json(parsed), text);
    EXPECT_EQ(parsed, builtin_genotypes().at(name));
    EXPECT_EQ(genotype_to_json(builtin_genotypes().at(name)), text);
    EXPECT_EQ(genotype_from_json(text + "\n", name), parsed);
  }
}

TEST(Genotype, DartsV2MatchesPublishedGenotype) {
  const Genotype& g = builtin_genotypes().at("DARTS_V2");
  EXPECT_EQ(g.space, "darts-cnn");
  ASSERT_EQ(g.normal.size(), 4u);
  ASSERT_EQ(g.reduce.size(), 4u);
  for (size_t j = 0; j < 4; ++j) {
    EXPECT_EQ(g.normal[j].size(), 2u);
    EXPECT_EQ(g.reduce[j].size(), 2u);
  }
  EXPECT_EQ(g.normal[0], (GenotypeNode{{"sep_conv_3x3", 0}, {"sep_conv_3x3", 1}}));
  EXPECT_EQ(g.normal[2], (GenotypeNode{{"sep_conv_3x3", 1}, {"skip_connect", 0}}));
  EXPECT_EQ(g.normal[3], (GenotypeNode{{"skip_connect", 0}, {"dil_conv_3x3", 2}}));
  EXPECT_EQ(g.reduce[0], (GenotypeNode{{"max_pool_3x3", 0}, {"max_pool_3x3", 1}}));
  EXPECT_EQ(g.reduce[1], (GenotypeNode{{"skip_connect", 2}, {"max_pool_3x3", 1}}));
  EXPECT_EQ(g.reduce[3], (GenotypeNode{{"skip_connect", 2}, {"max_pool_3x3", 1}}));
  EXPECT_EQ(g.normal_concat, (std::vector<int>{2, 3, 4, 5}));
  EXPECT_EQ(g.reduce_concat, (std::vector<int>{2, 3, 4, 5}));
  const Genotype& v1 = builtin_genotypes().at("DARTS_V1");
  EXPECT_EQ(v1.normal[0], (GenotypeNode{{"sep_conv_3x3", 1}, {"sep_conv_3x3", 0}}));
  EXPECT_EQ(v1.reduce[3], (GenotypeNode{{"skip_connect", 2}, {"avg_pool_3x3", 0}}));
  EXPECT_FALSE(v1 == g);
}

TEST(Genotype, AcceptsMultiOpNodesAndSharedInputs) {
  Genotype g;
  g.normal = {{{"sep_conv_3x3", 1}, {"skip_connect", 1}, {"max_pool_3x3", 1}},
              {{"dil_conv_5x5", 2}, {"dil_conv_5x5", 2}, {"avg_pool_3x3", 0}, {"sep_conv_5x5", 1}}};
  g.normal_concat = {3, 2};
  g.reduce = {{{"max_pool_3x3", 0}}, {{"skip_connect", 2}}, {{"sep_conv_3x3", 3}}};
  g.reduce_concat = {4};
  EXPECT_NO_THROW(validate_genotype(g));
  EXPECT_EQ(genotype_from_json(genotype_to_json(g)), g);
}

TEST(Genotype, EqualityComparesEveryField) {
  const Genotype base = builtin_genotypes().at("DATA_M4");
  Genotype other = base;
  EXPECT_EQ(other, base);
  other.reduce_concat = {2, 3, 4};
  EXPECT_FALSE(other == base);
  other = base;
  other.normal[1][2].input = 1;
  EXPECT_FALSE(other == base);
  other = base;
  other.space = "x";
  EXPECT_FALSE(other == base);
}

TEST(Genotype, RejectsBadJsonSyntaxAndShape) {
  expect_rejected(R"({"format": "datanas-genotype/1", )", "invalid JSON");
  expect_rejected("", "invalid JSON");
  expect_rejected("[1, 2]", "expected a JSON object");
  expect_rejected([](json& j) { j["extra"] = 1; }, "unknown key \"extra\"");
}

TEST(Genotype, RejectsWrongOrMissingFormat) {
  expect_rejected([](json& j) { j.erase("format"); },
                  "missing key \"format\" (expected \"datanas-genotype/1\")");
  expect_rejected(
      [](json& j) { j["format"] = "datanas-genotype/2"; },
      "format \"datanas-genotype/2\" is not supported (expected \"datanas-genotype/1\")");
  expect_rejected([](json& j) { j["format"] = 1; }, "expected \"datanas-genotype/1\"");
}

TEST(Genotype, RejectsUnknownSpaceAndOps) {
  expect_rejected([](json& j) { j["space"] = "darts-lstm"; },
                  "unknown space \"darts-lstm\" (expected \"darts-cnn\" or \"darts-rnn\")");
  // A CNN genotype relabelled as recurrent has the wrong keys for that space.
  expect_rejected([](json& j) { j["space"] = "darts-rnn"; },
                  "unknown key \"normal\" (expected format, space, recurrent, concat)");
  expect_rejected([](json& j) { j["space"] = 3; }, "space must be a string");
  expect_rejected([](json& j) { j.erase("space"); }, "missing key \"space\"");
  expect_rejected([](json& j) { j["normal"][1][0][0] = "conv_7x7"; },
                  "normal node 1 pair 0: unknown op \"conv_7x7\" (expected one of max_pool_3x3");
  expect_rejected([](json& j) { j["reduce"][0][1][0] = "none"; },
                  "reduce node 0 pair 1: op \"none\" is not allowed");
}

TEST(Genotype, RejectsInputOutOfRange) {
  json root = valid_json();
  root["normal"][2][1][1] = 7;
  EXPECT_EQ(error_of([&] { genotype_from_json(root.dump(), "g.json"); }),
            "g.json: normal node 2 pair 1: input 7 out of range (expected 0..3)");
  expect_rejected([](json& j) { j["reduce"][0][0][1] = 2; },
                  "reduce node 0 pair 0: input 2 out of range (expected 0..1)");
  expect_rejected([](json& j) { j["normal"][3][0][1] = -1; }, "input -1 out of range");
  expect_rejected([](json& j) { j["normal"][3][0][1] = 1e12; }, "must be an integer");
  expect_rejected([](json& j) { j["normal"][3][0][1] = 10000000000LL; },
                  "input 10000000000 is out of range");
}

TEST(Genotype, RejectsEmptyCellsAndNodes) {
  expect_rejected([](json& j) { j["normal"] = json::array(); }, "normal cell has no nodes");
  expect_rejected([](json& j) { j["reduce"][3] = json::array(); },
                  "reduce node 3 is empty (expected at least one [op, input] pair)");
  expect_rejected([](json& j) { j.erase("reduce"); }, "missing key \"reduce\"");
}

TEST(Genotype, RejectsWrongTypes) {
  expect_rejected([](json& j) { j["normal"] = json::object(); }, "normal must be a list of nodes");
  expect_rejected([](json& j) { j["normal"][0] = "sep_conv_3x3"; },
                  "normal node 0: expected a list of [op, input] pairs");
  expect_rejected(
      [](json& j) {
        j["normal"][0][1] = json::array({"sep_conv_3x3", 1, 2});
      },
      "normal node 0 pair 1: expected [op_name, input_index]");
  expect_rejected([](json& j) { j["normal"][0][1] = "sep_conv_3x3"; },
                  "normal node 0 pair 1: expected [op_name, input_index]");
  expect_rejected([](json& j) { j["normal"][0][1][0] = 4; }, "op name must be a string, got 4");
  expect_rejected([](json& j) { j["normal"][0][1][1] = "1"; },
                  "normal node 0 pair 1: input must be an integer, got \"1\"");
  expect_rejected([](json& j) { j["normal"][0][1][1] = true; }, "input must be an integer");
  expect_rejected([](json& j) { j["normal_concat"] = "2345"; },
                  "normal_concat must be a list of node indices");
  expect_rejected([](json& j) { j["reduce_concat"][1] = 3.0; },
                  "reduce_concat entry 1: node index must be an integer");
}

TEST(Genotype, RejectsBadConcat) {
  expect_rejected([](json& j) { j["normal_concat"] = json::array(); },
                  "normal_concat is empty (expected node indices in 2..5)");
  expect_rejected(
      [](json& j) {
        j["normal_concat"] = {2, 3, 4, 6};
      },
      "normal_concat: 6 out of range (expected node indices in 2..5)");
  expect_rejected([](json& j) { j["reduce_concat"] = {1, 2}; }, "reduce_concat: 1 out of range");
  expect_rejected([](json& j) { j["reduce_concat"] = {2, 3, 3}; }, "reduce_concat: 3 listed twice");
  expect_rejected([](json& j) { j.erase("reduce_concat"); }, "missing key \"reduce_concat\"");
}

TEST(Genotype, ValidateNamesDefaultSource) {
  Genotype g = builtin_genotypes().at("DARTS_V1");
  g.normal[0][0].op = "bogus";
  EXPECT_EQ(error_of([&] { validate_genotype(g); }).rfind("genotype: normal node 0 pair 0", 0), 0u);
}

TEST(Genotype, LoadFromFileAndMissingPath) {
  TempDir dir;
  const std::string path = dir.file("cell.json");
  write_file_atomic(path, std::string(kDataM7Text) + "\n");
  EXPECT_EQ(load_genotype(path), builtin_genotypes().at("DATA_M7"));

  const std::string bad = dir.file("bad.json");
  write_file_atomic(bad, R"({"format": "datanas-genotype/0"})");
  EXPECT_EQ(error_of([&] { load_genotype(bad); }).rfind(bad + ": format", 0), 0u);

  const std::string missing = dir.file("missing.json");
  EXPECT_EQ(error_of([&] { load_genotype(missing); }),
            missing +
                ": no such file and not a built-in genotype (built-ins: DARTS_RNN, "
                "DARTS_RNN_V1, DARTS_V1, DARTS_V2, DATA_M4, DATA_M7)");
  EXPECT_NE(error_of([&] { load_genotype("DARTS_V3"); }).find("DARTS_V3: no such file"),
            std::string::npos);
}

TEST(Genotype, SaveIsAtomicAndLoadsBack) {
  TempDir dir;
  const std::string path = dir.file("out.json");
  const Genotype& g = builtin_genotypes().at("DATA_M4");
  save_genotype(path, g);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.json"});
  EXPECT_EQ(read_text_file(path), std::string(kDataM4Text) + "\n");
  EXPECT_EQ(load_genotype(path), g);

  save_genotype(path, builtin_genotypes().at("DARTS_V2"));  // overwrite in place
  EXPECT_EQ(load_genotype(path), builtin_genotypes().at("DARTS_V2"));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.json"});

  Genotype invalid = g;
  invalid.reduce_concat.clear();
  const std::string other = dir.file("invalid.json");
  EXPECT_NE(error_of([&] { save_genotype(other, invalid); }).find("reduce_concat is empty"),
            std::string::npos);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.json"});
}

TEST(GenotypeDot, EdgesAndLabels) {
  const Genotype& v2 = builtin_genotypes().at("DARTS_V2");
  const std::string normal = genotype_to_dot(v2, "normal");
  EXPECT_EQ(normal.rfind("digraph normal {", 0), 0u);
  EXPECT_EQ(count_of(normal, "->"), 8u + 4u);
  EXPECT_EQ(count_of(normal, "label=\"sep_conv_3x3\""), 5u);
  EXPECT_EQ(count_of(normal, "label=\"skip_connect\""), 2u);
  EXPECT_EQ(count_of(normal, "label=\"dil_conv_3x3\""), 1u);
  EXPECT_EQ(count_of(normal, "-> \"c_{k}\""), 4u);
  EXPECT_NE(normal.find("\"c_{k-2}\" -> \"0\" [label=\"sep_conv_3x3\""), std::string::npos);
  EXPECT_NE(normal.find("\"0\" -> \"3\" [label=\"dil_conv_3x3\""), std::string::npos);

  const std::string reduce = genotype_to_dot(builtin_genotypes().at("DATA_M7"), "reduce");
  EXPECT_EQ(count_of(reduce, "->"), 3u + 5u + 6u + 4u + 4u);
  EXPECT_EQ(count_of(reduce, "label=\"dil_conv_3x3\""), 5u);
  EXPECT_EQ(count_of(reduce, "label="), 18u);
  EXPECT_EQ(reduce.back(), '\n');

  EXPECT_NE(error_of([&] { genotype_to_dot(v2, "both"); }).find("expected normal or reduce"),
            std::string::npos);
}

}  // namespace datanas
