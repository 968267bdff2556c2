// Crash safety through the datanas binary: a search and a training run are killed with SIGKILL
// at seeded random moments (and, every third trial, while a checkpoint is being written, held
// open by DATANAS_TEST_PAUSE_IN_CHECKPOINT), resumed with --resume until they finish, and must
// end with the same genotype, log and weights as an uninterrupted run. After every kill no
// output file may be half-written: every JSON file parses, every .pt passes its CRC check and
// loads. DATANAS_CRASH_TRIALS sets the trials per run kind (default 3; `make test-crash` more).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_support.h"
#include "run_tensors.h"
#include "space/genotype.h"
#include "util/zip_check.h"

namespace datanas {
namespace {
namespace fs = std::filesystem;
using namespace datanas::testing;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

class CrashSafety : public CliSuite<CrashSafety> {
 protected:
  static void SetUpTestSuite() {
    make_root("datanas_test_crash_");
    write_idx(root_ / "data", "train", 64, 11);
    write_idx(root_ / "data", "t10k", 32, 12);
  }

  static std::vector<std::string> search_args(const fs::path& out) {
    return {"search",
            "--data",
            (root_ / "data").string(),
            "--limit",
            "64",
            "--batch-size",
            "16",
            "--init-channels",
            "4",
            "--layers",
            "3",
            "--gap-batches",
            "1",
            "--bn-recalibration-batches",
            "1",
            "--threads",
            "1",
            "--epochs",
            "3",
            "--out",
            out.string()};
  }
  static std::vector<std::string> train_args(const fs::path& out) {
    return {"train",
            "--data",
            (root_ / "data").string(),
            "--limit",
            "64",
            "--test-limit",
            "32",
            "--init-channels",
            "4",
            "--layers",
            "3",
            "--batch-size",
            "16",
            "--threads",
            "1",
            "--epochs",
            "3",
            "--out",
            out.string()};
  }

  static int trials() {
    const char* text = std::getenv("DATANAS_CRASH_TRIALS");
    return text ? std::max(1, std::atoi(text)) : 3;
  }

  // Starts the binary itself (no shell, so the pid is the run's), output to `dir`.log.
  static pid_t spawn(std::vector<std::string> args, const fs::path& dir, bool pause) {
    const std::string log = dir.string() + ".log";
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (pause) ::setenv("DATANAS_TEST_PAUSE_IN_CHECKPOINT", "1.5", 1);
      std::freopen(log.c_str(), "a", stdout);
      std::freopen(log.c_str(), "a", stderr);
      std::vector<char*> argv{const_cast<char*>(DATANAS_BINARY)};
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(DATANAS_BINARY, argv.data());
      std::_Exit(127);
    }
    return pid;
  }

  // Waits for `pid`; returns its exit code (-1 when a signal ended it).
  static int wait_for(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  static bool has_temp_file(const fs::path& dir, const std::string& prefix) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.path().filename().string().rfind(prefix + ".tmp.", 0) == 0) return true;
    return false;
  }

  // Runs `args` and kills it: after `delay` or, when `checkpoint_write` > 0, while the
  // checkpoint_write-th .pt file is being written. Returns false when it finished first.
  static bool run_and_kill(const std::vector<std::string>& args, const fs::path& dir, double delay,
                           int checkpoint_write) {
    const pid_t pid = spawn(args, dir, checkpoint_write > 0);
    const auto deadline = Clock::now() + std::chrono::duration<double>(delay);
    int writes_seen = 0;
    bool in_write = false;
    while (true) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) return false;
      if (checkpoint_write > 0) {
        const bool now = has_temp_file(dir, "checkpoint.pt") || has_temp_file(dir, "model.pt");
        if (now && !in_write && ++writes_seen == checkpoint_write) break;
        in_write = now;
      } else if (Clock::now() >= deadline) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::kill(pid, SIGKILL);
    wait_for(pid);
    return true;
  }

  // No output of `dir` is half-written: JSON parses, log lines parse, .pt files load.
  static void expect_whole_files(const fs::path& dir, const std::string& when) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.find(".tmp.") != std::string::npos) continue;  // a writer's own, never read
      const std::string text = slurp(entry.path());
      if (name.size() > 5 && name.substr(name.size() - 5) == ".json") {
        EXPECT_TRUE(json::accept(text)) << when << ": " << name << " is not whole JSON";
      } else if (name == "log.jsonl") {
        std::istringstream lines(text);
        for (std::string line; std::getline(lines, line);)
          EXPECT_TRUE(json::accept(line)) << when << ": log.jsonl line " << line;
        EXPECT_TRUE(text.empty() || text.back() == '\n') << when << ": log.jsonl cut short";
      } else if (name.size() > 3 && name.substr(name.size() - 3) == ".pt") {
        EXPECT_NO_THROW(check_zip_file(entry.path().string())) << when << ": " << name;
        torch::serialize::InputArchive archive;
        EXPECT_NO_THROW(archive.load_from(entry.path().string())) << when << ": " << name;
      } else if (name.size() > 4 && name.substr(name.size() - 4) == ".dot") {
        EXPECT_EQ(text.substr(text.size() - 2), "}\n") << when << ": " << name;
      }
    }
  }

  // One kind of run: the uninterrupted reference, then the kill/resume trials against it.
  static void kill_and_resume(const std::string& kind,
                              std::vector<std::string> (*args)(const fs::path&)) {
    const fs::path reference = root_ / (kind + "_reference");
    const auto start = Clock::now();
    ASSERT_EQ(wait_for(spawn(args(reference), reference, false)), 0)
        << slurp(reference.string() + ".log");
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    std::mt19937 rng(20261204);
    int kills = 0, mid_write = 0;
    for (int trial = 0; trial < trials(); ++trial) {
      const fs::path dir = root_ / (kind + "_trial" + std::to_string(trial));
      const std::string what = kind + " trial " + std::to_string(trial);
      // Every third trial dies inside its first, second or third checkpoint write.
      const int write = trial % 3 == 2 ? 1 + static_cast<int>(rng() % 3) : 0;
      const double delay = std::uniform_real_distribution<double>(0.05, seconds)(rng);
      bool killed = run_and_kill(args(dir), dir, delay, write);
      for (int attempt = 0; killed; ++attempt) {
        ++kills;
        if (write && attempt == 0) {
          ++mid_write;
          EXPECT_TRUE(has_temp_file(dir, "checkpoint.pt") || has_temp_file(dir, "model.pt"))
              << what << ": not killed inside a checkpoint write";
        }
        expect_whole_files(dir, what + " after kill " + std::to_string(kills));
        // Resume (a run killed before writing config.json starts again); at most one more
        // kill, then to the end.
        std::vector<std::string> next = args(dir);
        if (fs::exists(dir / "config.json")) next = {next[0], "--resume", "--out", dir.string()};
        if (attempt == 0 && rng() % 2) {
          killed = run_and_kill(next, dir,
                                std::uniform_real_distribution<double>(0.05, seconds)(rng), 0);
        } else {
          ASSERT_EQ(wait_for(spawn(next, dir, false)), 0) << what << "\n"
                                                          << slurp(dir.string() + ".log");
          killed = false;
        }
      }
      expect_whole_files(dir, what + " at the end");
      EXPECT_FALSE(has_temp_file(dir, "checkpoint.pt")) << what;
      EXPECT_EQ(log_records(dir), log_records(reference)) << what;
      if (kind == "search") {
        EXPECT_EQ(slurp(dir / "genotype.json"), slurp(reference / "genotype.json")) << what;
        expect_same_tensors(search_checkpoint_tensors(dir), search_checkpoint_tensors(reference),
                            what);
      } else {
        expect_same_tensors(model_file_tensors(dir / "model.pt"),
                            model_file_tensors(reference / "model.pt"), what);
      }
    }
    std::printf(
        "%s: %d trials, %d kills (%d inside a checkpoint write), uninterrupted run %.1f s\n",
        kind.c_str(), trials(), kills, mid_write, seconds);
  }
};

TEST_F(CrashSafety, SearchKilledAndResumedEndsLikeTheUninterruptedRun) {
  kill_and_resume("search", &CrashSafety::search_args);
}

TEST_F(CrashSafety, TrainingKilledAndResumedEndsLikeTheUninterruptedRun) {
  kill_and_resume("train", &CrashSafety::train_args);
}

}  // namespace
}  // namespace datanas
