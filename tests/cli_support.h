// Shared helpers of the end-to-end tests that drive the datanas binary (DATANAS_BINARY).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace datanas::testing {
namespace fs = std::filesystem;

// One datanas run: exit code (-1 unless it exited normally), stdout and stderr.
struct Result {
  int code = -1;
  std::string out, err;
};

// The bytes of the file at `path` ("" if it cannot be read).
inline std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// `p` in single quotes, for a shell command line.
inline std::string quote(const fs::path& p) { return "'" + p.string() + "'"; }

// `v` as 4 big-endian bytes, as IDX headers store it.
inline std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// Whether the shell finds `tool`.
inline bool on_path(const std::string& tool) {
  return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0;
}

// Writes IDX files `<prefix>-*-ubyte`: n 28x28 images, class c a bright 6x6 square on noise.
inline void write_idx(const fs::path& dir, const std::string& prefix, uint32_t n, int seed) {
  std::mt19937 rng(seed);
  std::string pixels, labels;
  for (uint32_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % 10);
    labels.push_back(static_cast<char>(c));
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        const bool square = y >= 2 + 2 * c && y < 8 + 2 * c && x >= 20 - 2 * c && x < 26 - 2 * c;
        pixels.push_back(static_cast<char>(square ? 200 + rng() % 56 : rng() % 60));
      }
  }
  std::ofstream(dir / (prefix + "-images-idx3-ubyte"), std::ios::binary)
      << be32(0x803) + be32(n) + be32(28) + be32(28) + pixels;
  std::ofstream(dir / (prefix + "-labels-idx1-ubyte"), std::ios::binary)
      << be32(0x801) + be32(n) + labels;
}

// The records of `dir`/log.jsonl without the wall-clock field "seconds".
inline std::vector<nlohmann::json> log_records(const fs::path& dir) {
  std::vector<nlohmann::json> records;
  std::ifstream in(dir / "log.jsonl");
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    nlohmann::json record = nlohmann::json::parse(line);
    record.erase("seconds");
    records.push_back(record);
  }
  return records;
}

// Fixture base, its statics per Suite: temp folder root_ and baseline_ run, dropped at the end.
template <class Suite>
class CliSuite : public ::testing::Test {
 protected:
  // Makes root_ a fresh `<temp>/<name><pid>` holding an empty data/ folder.
  static void make_root(const std::string& name) {
    root_ = fs::temp_directory_path() / (name + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_ / "data");
  }

  // Deletes baseline_ and removes root_ (the derived SetUpTestSuite makes both).
  static void TearDownTestSuite() {
    delete baseline_;
    baseline_ = nullptr;
    fs::remove_all(root_);
  }

  // Runs `datanas <args>`, capturing exit code, stdout and stderr through files in root_.
  static Result run(const std::string& args) { return run_env("", args); }

  // The same with `env` ("NAME=value ...") set for the binary only.
  static Result run_env(const std::string& env, const std::string& args) {
    static int counter = 0;
    const fs::path out = root_ / ("stdout" + std::to_string(counter));
    const fs::path err = root_ / ("stderr" + std::to_string(counter++));
    const std::string command =
        env + " " + std::string(DATANAS_BINARY) + " " + args + " >" + quote(out) + " 2>" +
        quote(err);
    const int status = std::system(command.c_str());
    Result r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
  }

  // The run must fail with exit code != 0 and exactly one stderr line that names `problem`.
  static void expect_failure(const std::string& args, const std::string& problem) {
    Result r = run(args);
    EXPECT_NE(r.code, 0) << args;
    std::vector<std::string> errors;
    std::istringstream lines(r.err);
    for (std::string line; std::getline(lines, line);)
      if (line.find("rror") != std::string::npos) errors.push_back(line);
    ASSERT_EQ(errors.size(), 1u) << args << "\nstderr:\n" << r.err;
    EXPECT_NE(errors[0].find(problem), std::string::npos) << args << "\n" << errors[0];
  }

  inline static fs::path root_;
  inline static Result* baseline_ = nullptr;
};

}  // namespace datanas::testing
