// `datanas bench` at smoke-test sizes: every documented key, values in their ranges, the row
// count, the JSON-lines file, and one-line errors. No timing is asserted.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.h"

namespace datanas {
namespace {
using namespace datanas::testing;
using nlohmann::json;

std::vector<json> json_lines(const std::string& text) {
  std::vector<json> rows;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

class BenchCli : public CliSuite<BenchCli> {
 protected:
  static void SetUpTestSuite() { make_root("datanas_test_bench_"); }
};

TEST_F(BenchCli, SearchStepReportsEveryKey) {
  const fs::path out = root_ / "search-step.jsonl";
  Result r =
      run("bench --what search-step --configs tiny --M 1,7 --warmup 0 --repeats 1 "
          "--threads 1 --json --out " +
          quote(out));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<json> rows = json_lines(r.out);
  ASSERT_EQ(rows.size(), 2u) << r.out;
  for (const json& row : rows) {
    for (const char* key : {"config", "M", "dense_ms", "fast_ms", "fast_arch_ms", "fast_weight_ms",
                            "oracle_ms", "speedup", "overhead", "distinct_ops", "peak_rss_mb",
                            "kernels"})
      EXPECT_TRUE(row.contains(key)) << key << " missing in " << row.dump();
    EXPECT_EQ(row["config"], "tiny");
    EXPECT_NEAR(row["fast_ms"].get<double>(),
                row["fast_arch_ms"].get<double>() + row["fast_weight_ms"].get<double>(), 1e-6);
    EXPECT_NEAR(row["speedup"].get<double>(),
                row["dense_ms"].get<double>() / row["fast_ms"].get<double>(), 1e-9);
    EXPECT_GT(row["oracle_ms"].get<double>(), 0.0);
    EXPECT_GT(row["peak_rss_mb"].get<double>(), 1.0);
  }
  // Node granularity with M = 1 keeps exactly one (input, op) pair per node: at most 4 ops
  // over 14 edges; M = 7 keeps more, but never more than 7 per node.
  EXPECT_LE(rows[0]["distinct_ops"].get<double>(), 4.0 / 14 + 1e-9);
  EXPECT_GT(rows[1]["distinct_ops"].get<double>(), rows[0]["distinct_ops"].get<double>());
  EXPECT_LE(rows[1]["distinct_ops"].get<double>(), 28.0 / 14 + 1e-9);
  EXPECT_EQ(json_lines(slurp(out)), rows);
}

TEST_F(BenchCli, OpsCoverEveryOpAndThePreprocessing) {
  Result r = run("bench --what ops --shape 2,5,9,9 --warmup 0 --repeats 1 --threads 1 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<json> rows = json_lines(r.out);
  ASSERT_EQ(rows.size(), 9u) << r.out;
  EXPECT_EQ(rows.front()["op"], "none");
  EXPECT_EQ(rows.back()["op"], "preprocess_1x1");
  for (const json& row : rows) {
    EXPECT_EQ(row["shape"], json::array({2, 5, 9, 9}));
    EXPECT_GT(row["fwd_bwd_limit_ms"].get<double>(), row["fwd_limit_ms"].get<double>());
    EXPECT_GT(row["bandwidth_gbs"].get<double>(), 0.0);
    for (const char* key : {"native_fwd_ms", "native_ms", "native_fwd_speedup", "native_speedup",
                            "native_vs_limit"})
      EXPECT_TRUE(row.contains(key)) << key << " missing in " << row.dump();
    EXPECT_NEAR(row["native_speedup"].get<double>(),
                row["fwd_bwd_ms"].get<double>() / row["native_ms"].get<double>(), 1e-9);
  }
}

TEST_F(BenchCli, BadFlagsGiveOneLine) {
  expect_failure("bench --configs nope --no-dense", "--configs");
  expect_failure("bench --what ops --shape 2,5,9", "--shape");
  expect_failure("bench --M 0 --configs tiny", "--M");
  expect_failure("bench --configs tiny --kernels mkl", "--kernels");
}

}  // namespace
}  // namespace datanas
