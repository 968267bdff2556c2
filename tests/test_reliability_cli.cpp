// End to end through the datanas binary: numerical faults (a NaN/Inf loss or gradient injected
// at a chosen step with the test-only DATANAS_TEST_FAULT) and memory limits, for search and
// training.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_support.h"
#include "run_tensors.h"

namespace datanas {
namespace {
namespace fs = std::filesystem;
using namespace datanas::testing;
using nlohmann::json;

class ReliabilityCli : public CliSuite<ReliabilityCli> {
 protected:
  // 48 training images and 32 test images: 3 steps an epoch for both the search (24 images in
  // each half, batches of 8) and training (batches of 16). One good epoch of each kind.
  static void SetUpTestSuite() {
    make_root("datanas_test_reliability_");
    write_idx(root_ / "data", "train", 48, 5);
    write_idx(root_ / "data", "t10k", 32, 6);
    baseline_ = new Result(run("search " + search_flags(root_ / "search", 1)));
    train_baseline_ = new Result(run("train " + train_flags(root_ / "train", 1)));
  }
  static void TearDownTestSuite() {
    delete train_baseline_;
    train_baseline_ = nullptr;
    CliSuite::TearDownTestSuite();
  }

  static std::string search_flags(const fs::path& out, int epochs, int batch = 8) {
    return "--data " + quote(root_ / "data") + " --batch-size " + std::to_string(batch) +
           " --limit 96 --init-channels 4 --layers 3 --gap-batches 1"
           " --bn-recalibration-batches 1 --threads 1 --epochs " +
           std::to_string(epochs) + " --out " + quote(out);
  }
  static std::string train_flags(const fs::path& out, int epochs, int batch = 16) {
    return "--data " + quote(root_ / "data") + " --batch-size " + std::to_string(batch) +
           " --init-channels 4 --layers 3 --threads 1 --epochs " +
           std::to_string(epochs) + " --out " + quote(out);
  }

  // Copies a finished one-epoch run, so each test resumes its own folder.
  static fs::path copy_run(const fs::path& from, const std::string& name) {
    const fs::path to = root_ / name;
    fs::remove_all(to);
    fs::copy(from, to, fs::copy_options::recursive);
    return to;
  }

  // A fault in epoch 2 must stop the resumed run at that step, naming it and the checkpoint of
  // epoch 1, and leave every file of epoch 1 byte-identical.
  static void expect_stop_keeps_checkpoint(const std::string& command, const fs::path& run_dir,
                                           const std::string& fault, const std::string& step,
                                           const std::string& problem) {
    const std::string checkpoint = slurp(run_dir / "checkpoint.pt");
    const std::string log = slurp(run_dir / "log.jsonl");
    ASSERT_FALSE(checkpoint.empty());
    Result r = run_env("DATANAS_TEST_FAULT=" + fault,
                       command + " --resume --epochs 2 --out " + quote(run_dir));
    EXPECT_NE(r.code, 0);
    std::vector<std::string> errors;
    std::istringstream lines(r.err);
    for (std::string line; std::getline(lines, line);)
      if (line.find("rror") != std::string::npos) errors.push_back(line);
    ASSERT_EQ(errors.size(), 1u) << r.err;
    EXPECT_NE(errors[0].find(step + ": " + problem), std::string::npos) << errors[0];
    EXPECT_NE(errors[0].find("last good checkpoint: " + (run_dir / "checkpoint.pt").string()),
              std::string::npos)
        << errors[0];
    EXPECT_NE(errors[0].find("--on-nonfinite skip"), std::string::npos) << errors[0];
    EXPECT_EQ(slurp(run_dir / "checkpoint.pt"), checkpoint);
    EXPECT_EQ(slurp(run_dir / "log.jsonl"), log);
  }

  inline static Result* train_baseline_ = nullptr;
};

TEST_F(ReliabilityCli, SearchStopsAtANonFiniteLossAndKeepsTheCheckpoint) {
  ASSERT_EQ(baseline_->code, 0) << baseline_->err;
  expect_stop_keeps_checkpoint("search", copy_run(root_ / "search", "s_loss"), "loss@2:3",
                               "epoch 2 step 3", "loss is not finite (nan)");
}

// The loss stays finite, the gradients do not: the architecture step (first in first-order
// mode) finds the alpha gradient, the weight-only warm-up finds the weight gradient.
TEST_F(ReliabilityCli, SearchStopsAtANonFiniteGradient) {
  ASSERT_EQ(baseline_->code, 0) << baseline_->err;
  expect_stop_keeps_checkpoint("search", copy_run(root_ / "search", "s_grad"), "grad@2:2",
                               "epoch 2 step 2", "alpha gradient 0 is not finite");
  const fs::path warm = root_ / "s_warm";
  Result r = run_env("DATANAS_TEST_FAULT=grad@1:2",
                     "search " + search_flags(warm, 2) + " --warmup-epochs 1");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("epoch 1 step 2: weight gradient norm is not finite (nan); last good "
                       "checkpoint: none"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(warm / "checkpoint.pt"));
  EXPECT_FALSE(fs::exists(warm / "genotype.json"));
}

TEST_F(ReliabilityCli, SearchSkipDropsThePoisonedBatchesAndContinues) {
  ASSERT_EQ(baseline_->code, 0) << baseline_->err;
  const fs::path dir = copy_run(root_ / "search", "s_skip");
  const TensorMap epoch1 = search_checkpoint_tensors(dir);
  Result r = run_env("DATANAS_TEST_FAULT=loss@2:*",
                     "search --resume --epochs 2 --on-nonfinite skip --out " + quote(dir));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("warning: epoch 2 step 3: loss is not finite (nan); batch skipped"),
            std::string::npos)
      << r.err;
  // Every batch of epoch 2 was dropped: its checkpoint holds exactly epoch 1's weights, BN
  // statistics (restored after each poisoned forward pass) and alphas.
  const TensorMap epoch2 = search_checkpoint_tensors(dir);
  expect_same_tensors(epoch1, epoch2, "skipped epoch", "epochs_done");
  EXPECT_EQ(epoch2.at("epochs_done").item<int64_t>(), 2);
  // And the run goes on: a clean third epoch, every number finite.
  Result more = run("search --resume --epochs 3 --out " + quote(dir));
  ASSERT_EQ(more.code, 0) << more.err;
  const std::vector<json> log = log_records(dir);
  ASSERT_EQ(log.size(), 3u);
  EXPECT_FALSE(log[0].contains("skipped_steps"));
  EXPECT_EQ(log[1]["skipped_steps"], 3);
  EXPECT_FALSE(log[2].contains("skipped_steps"));
  for (const json& record : log) {
    EXPECT_TRUE(std::isfinite(record["train_loss"].get<double>()));
    EXPECT_TRUE(std::isfinite(record["search_acc"].get<double>()));
  }
}

TEST_F(ReliabilityCli, TrainStopsAtANonFiniteLossOrGradientAndKeepsTheCheckpoint) {
  ASSERT_EQ(train_baseline_->code, 0) << train_baseline_->err;
  expect_stop_keeps_checkpoint("train", copy_run(root_ / "train", "t_loss"), "loss@2:2",
                               "epoch 2 step 2", "loss is not finite (nan)");
  expect_stop_keeps_checkpoint("train", copy_run(root_ / "train", "t_grad"), "grad@2:3",
                               "epoch 2 step 3", "weight gradient norm is not finite (nan)");
}

TEST_F(ReliabilityCli, TrainSkipContinuesWithFiniteWeights) {
  ASSERT_EQ(train_baseline_->code, 0) << train_baseline_->err;
  const fs::path dir = copy_run(root_ / "train", "t_skip");
  Result r = run_env("DATANAS_TEST_FAULT=grad@2:1",
                     "train --resume --epochs 2 --on-nonfinite skip --out " + quote(dir));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<json> log = log_records(dir);
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[1]["skipped_steps"], 1);
  EXPECT_TRUE(std::isfinite(log[1]["train_loss"].get<double>()));
  EXPECT_TRUE(std::isfinite(log[1]["test_loss"].get<double>()));
  // The run's config records the policy, so a resumed run keeps it.
  EXPECT_EQ(json::parse(slurp(dir / "config.json"))["on_nonfinite"], "skip");
}

TEST_F(ReliabilityCli, RunsThatWouldNotFitAreRefusedUpFront) {
  const fs::path e = root_ / "memory";
  // 48 images of 28x28 need about 0.2 MiB of data: a 0.0001 GiB (105 KB) limit refuses them.
  expect_failure("search " + search_flags(e / "s1", 1) + " --memory-limit 0.0001",
                 "--dataset fashion-mnist: 48 images needs about");
  expect_failure("train " + train_flags(e / "t1", 1) + " --memory-limit 0.0001",
                 "raise --memory-limit");
  // Data that fits, a batch that does not: 0.01 GiB holds the data but not 4096 images' maps.
  expect_failure("search " + search_flags(e / "s2", 1, 4096) + " --memory-limit 0.01",
                 "--batch-size 4096 with this supernet needs about");
  expect_failure("train " + train_flags(e / "t2", 1, 4096) + " --memory-limit 0.01",
                 "lower --batch-size");
  for (const char* run_dir : {"s1", "s2", "t1", "t2"})
    EXPECT_FALSE(fs::exists(e / run_dir / "checkpoint.pt")) << run_dir;
  expect_failure("search " + search_flags(e / "s3", 1) + " --memory-limit -1", "--memory-limit");
  expect_failure("train " + train_flags(e / "t3", 1) + " --on-nonfinite ignore", "--on-nonfinite");
  expect_failure("search " + search_flags(e / "s4", 1) + " --on-nonfinite ignore",
                 "--on-nonfinite");
}

}  // namespace
}  // namespace datanas
