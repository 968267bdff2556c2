// End to end through the datanas binary: retraining (`train`, resume, determinism), the model
// file (`eval`, in-process load), `info`, `random`, the `run` pipeline, and error messages, on
// a generated Fashion-MNIST-format data set.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cli_support.h"
#include "space/genotype.h"
#include "train/model_file.h"

namespace datanas {
namespace {
namespace fs = std::filesystem;
using namespace datanas::testing;
using nlohmann::json;

class TrainCli : public CliSuite<TrainCli> {
 protected:
  static void SetUpTestSuite() {
    make_root("datanas_test_train_cli_");
    write_idx(root_ / "data", "train", 96, 42);
    write_idx(root_ / "data", "t10k", 48, 7);
    baseline_ = new Result(run("train " + train_flags(root_ / "a", 2)));
  }

  static std::string train_flags(const fs::path& out, int epochs,
                                 const std::string& genotype = "DARTS_V2",
                                 const std::string& drop_path = "0.2") {
    return "--genotype " + genotype + " --drop-path " + drop_path + " --data " +
           quote(root_ / "data") +
           " --init-channels 4 --layers 3 --batch-size 16 --limit 64 --test-limit 32"
           " --threads 1 --epochs " +
           std::to_string(epochs) + " --out " + quote(out);
  }

  static std::string eval_command(const fs::path& model) {
    return "eval --model " + quote(model) + " --data " + quote(root_ / "data") +
           " --limit 32 --batch-size 16 --threads 1";
  }
};

TEST_F(TrainCli, TrainWritesEveryOutput) {
  ASSERT_EQ(baseline_->code, 0) << baseline_->err;
  const fs::path a = root_ / "a";
  for (const char* name : {"config.json", "log.jsonl", "checkpoint.pt", "model.pt"})
    EXPECT_TRUE(fs::is_regular_file(a / name)) << name;

  const json config = json::parse(slurp(a / "config.json"));
  const json expected = {
      {"seed", 1},    {"genotype", "DARTS_V2"}, {"init_channels", 4},  {"layers", 3},
      {"epochs", 2},  {"batch_size", 16},       {"limit", 64},         {"test_limit", 32},
      {"threads", 1}, {"drop_path", 0.2},       {"kernels", "native"}, {"memory_format", "auto"}};
  for (const auto& item : expected.items())
    EXPECT_EQ(config[item.key()], item.value()) << item.key();

  const std::vector<json> log = log_records(a);
  ASSERT_EQ(log.size(), 2u);
  for (size_t i = 0; i < log.size(); ++i) {
    for (const char* key : {"epoch", "lr", "drop_path", "train_loss", "train_acc", "test_loss",
                            "test_acc", "test_top5"})
      ASSERT_TRUE(log[i].contains(key)) << "epoch " << i + 1 << " lacks " << key;
    EXPECT_EQ(log[i]["epoch"], i + 1);
    const double top1 = log[i]["test_acc"], top5 = log[i]["test_top5"];
    EXPECT_TRUE(top1 >= 0 && top1 <= top5 && top5 <= 1) << top1 << " " << top5;
  }
  // Drop-path ramps linearly from 0; the learning rate follows the cosine from --lr.
  EXPECT_EQ(log[0]["drop_path"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(log[1]["drop_path"].get<double>(), 0.1);
  EXPECT_DOUBLE_EQ(log[0]["lr"].get<double>(), 0.025);
  EXPECT_NEAR(log[1]["lr"].get<double>(), 0.0125, 1e-12);
}

// One epoch plus a resumed second equals two uninterrupted epochs: same log, same weights.
TEST_F(TrainCli, ResumeEqualsTheUninterruptedRun) {
  ASSERT_EQ(baseline_->code, 0) << baseline_->err;
  const fs::path a = root_ / "a", b = root_ / "b";
  Result first = run("train " + train_flags(b, 1));
  ASSERT_EQ(first.code, 0) << first.err;
  ASSERT_EQ(log_records(b).size(), 1u);
  Result resumed = run("train --resume --epochs 2 --out " + quote(b));
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_EQ(log_records(b), log_records(a));

  Result eval_a = run(eval_command(a / "model.pt"));
  Result eval_b = run(eval_command(b / "model.pt"));
  ASSERT_EQ(eval_a.code, 0) << eval_a.err;
  ASSERT_EQ(eval_b.code, 0) << eval_b.err;
  EXPECT_EQ(eval_a.out, eval_b.out);

  ModelFile model_a = load_model_file((a / "model.pt").string());
  ModelFile model_b = load_model_file((b / "model.pt").string());
  EXPECT_EQ(model_a.genotype, load_genotype("DARTS_V2"));
  EXPECT_EQ(model_a.options.input_channels, 1);
  EXPECT_EQ(model_a.options.layers, 3);
  // Every parameter and buffer (BN running statistics) is bit-identical.
  auto expect_equal = [](const auto& named_a, const auto& named_b) {
    ASSERT_EQ(named_a.size(), named_b.size());
    for (const auto& item : named_a) {
      const at::Tensor* other = named_b.find(item.key());
      ASSERT_NE(other, nullptr) << item.key();
      EXPECT_TRUE(torch::equal(item.value(), *other)) << item.key();
    }
  };
  expect_equal(model_a.network->named_parameters(), model_b.network->named_parameters());
  expect_equal(model_a.network->named_buffers(), model_b.network->named_buffers());
}

TEST_F(TrainCli, EvalOfTheSavedModelMatchesTheLastEpoch) {
  ASSERT_EQ(baseline_->code, 0) << baseline_->err;
  Result r = run(eval_command(root_ / "a" / "model.pt"));
  ASSERT_EQ(r.code, 0) << r.err;
  const json eval = json::parse(r.out);
  const json last = log_records(root_ / "a").back();
  EXPECT_EQ(eval["images"], 32);
  // 32 images: accuracies are multiples of 1/32, exact in the printed 6 decimals.
  EXPECT_EQ(eval["test_acc"].get<double>(), last["test_acc"].get<double>());
  EXPECT_EQ(eval["test_top5"].get<double>(), last["test_top5"].get<double>());
  EXPECT_NEAR(eval["test_loss"].get<double>(), last["test_loss"].get<double>(), 2e-6);
}

TEST_F(TrainCli, SameSeedGivesTheSameRun) {
  ASSERT_EQ(baseline_->code, 0) << baseline_->err;
  Result r = run("train " + train_flags(root_ / "a2", 2));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(log_records(root_ / "a2"), log_records(root_ / "a"));
}

TEST_F(TrainCli, ErrorsAreOneLineAndNameTheProblem) {
  ASSERT_EQ(baseline_->code, 0) << baseline_->err;
  const fs::path e = root_ / "errors";
  fs::create_directories(e / "empty");
  expect_failure("eval --model " + quote(e / "missing.pt"), "missing.pt");

  std::mt19937 rng(3);
  std::string garbage;
  for (int i = 0; i < 4096; ++i) garbage.push_back(static_cast<char>(rng()));
  std::ofstream(e / "x.pt", std::ios::binary) << garbage;
  expect_failure("eval --model " + quote(e / "x.pt"), "x.pt");

  const std::string model = slurp(root_ / "a" / "model.pt");
  std::ofstream(e / "half.pt", std::ios::binary) << model.substr(0, model.size() / 2);
  expect_failure("eval --model " + quote(e / "half.pt"), "half.pt");
  // A datanas archive whose metadata lacks the genotype is malformed, not a crash.
  torch::serialize::OutputArchive archive;
  const json network = {{"kind", "cifar"}, {"input_channels", 1}, {"init_channels", 4},
                        {"layers", 3},     {"classes", 10},       {"auxiliary", false}};
  const json meta = {
      {"format", "datanas-model/1"}, {"dataset", "fashion-mnist"}, {"network", network}};
  archive.write("meta", c10::IValue(meta.dump()));
  archive.save_to((e / "nogenotype.pt").string());
  expect_failure("eval --model " + quote(e / "nogenotype.pt"), "nogenotype.pt");

  expect_failure("train " + train_flags(e / "t1", 1, quote(e / "nosuch.json")), "nosuch.json");
  std::string bad = genotype_to_json(load_genotype("DARTS_V2"));
  bad.replace(bad.find("sep_conv_3x3"), 12, "conv_9x9");
  std::ofstream(e / "bad.json") << bad;
  expect_failure("train " + train_flags(e / "t2", 1, quote(e / "bad.json")), "conv_9x9");
  expect_failure("train " + train_flags(e / "t3", 1, "DARTS_V2", "1.5"), "--drop-path");
  expect_failure("train " + train_flags(e / "t4", 1) + " --network foo", "--network");
  expect_failure("train " + train_flags(e / "t5", 1) + " --kernels fast", "--kernels");
  expect_failure("train --resume --out " + quote(e / "empty"), "config.json");
}

TEST_F(TrainCli, InfoMatchesTheReferenceSizes) {
  Result cifar = run("info --genotype DARTS_V2 --init-channels 36 --layers 20 --json");
  ASSERT_EQ(cifar.code, 0) << cifar.err;
  const json c = json::parse(cifar.out);
  EXPECT_EQ(c["params"], 3349342);
  EXPECT_EQ(c["cells"].size(), 20u);
  Result imagenet = run(
      "info --genotype DARTS_V2 --network imagenet --init-channels 48 --layers 14 --classes 1000 "
      "--json");
  ASSERT_EQ(imagenet.code, 0) << imagenet.err;
  const json i = json::parse(imagenet.out);
  EXPECT_EQ(i["params"], 4718752);
  EXPECT_EQ(i["cells"].size(), 14u);
}

TEST_F(TrainCli, RandomGenotypesAreValidAndSeeded) {
  Result first = run("random --M 4 --seed 5");
  ASSERT_EQ(first.code, 0) << first.err;
  const Genotype genotype = genotype_from_json(first.out);
  for (const auto* cell : {&genotype.normal, &genotype.reduce}) {
    EXPECT_EQ(cell->size(), 4u);
    for (const GenotypeNode& node : *cell) {
      EXPECT_GE(node.size(), 1u);
      EXPECT_LE(node.size(), 4u);
    }
  }
  EXPECT_EQ(run("random --M 4 --seed 5").out, first.out);
  for (int seed : {6, 7, 8, 9}) {
    Result other = run("random --M 4 --seed " + std::to_string(seed));
    ASSERT_EQ(other.code, 0) << other.err;
    EXPECT_NE(other.out, first.out) << "seed " << seed;
  }
  const fs::path file = root_ / "random.json";
  ASSERT_EQ(run("random --M 4 --seed 5 --out " + quote(file)).code, 0);
  EXPECT_EQ(load_genotype(file.string()), genotype);
}

TEST_F(TrainCli, RunPipelineWritesTheReport) {
  const fs::path r = root_ / "r";
  Result result =
      run("run --data " + quote(root_ / "data") +
          " --limit 64 --epochs 1 --batch-size 16 --init-channels 4 --layers 3 --gap-batches 1"
          " --bn-recalibration-batches 1 --train-epochs 1 --train-init-channels 4 --train-layers 3"
          " --train-batch-size 16 --train-limit 64 --test-limit 32 --threads 1 --out " +
          quote(r));
  ASSERT_EQ(result.code, 0) << result.err;
  ASSERT_TRUE(fs::is_regular_file(r / "report.json"));
  const json report = json::parse(slurp(r / "report.json"));
  for (const char* key :
       {"genotype", "search_acc", "derived_acc", "gap", "params", "macs", "test_acc"})
    EXPECT_TRUE(report.contains(key)) << key;
  ASSERT_TRUE(fs::is_regular_file(r / "search" / "genotype.json"));
  ASSERT_TRUE(fs::is_regular_file(r / "train" / "model.pt"));
  const Genotype searched = load_genotype((r / "search" / "genotype.json").string());
  EXPECT_EQ(genotype_from_json(report["genotype"].dump()), searched);
  EXPECT_EQ(report["test_acc"], log_records(r / "train").back()["test_acc"]);
  // The reported size is that of the retrained network (4 channels, 3 cells, 1x28x28 input).
  const ModelFile model = load_model_file((r / "train" / "model.pt").string());
  EXPECT_EQ(model.genotype, searched);
  EXPECT_EQ(model.options.init_channels, 4);
  EXPECT_EQ(model.options.layers, 3);
  Result info = run("info --genotype " + quote(r / "search" / "genotype.json") +
                    " --init-channels 4 --layers 3 --input-channels 1 --input-size 28 --json");
  ASSERT_EQ(info.code, 0) << info.err;
  const json size = json::parse(info.out);
  EXPECT_EQ(report["params"], size["params"]);
  EXPECT_EQ(report["macs"], size["macs"]);
  if (on_path("dot")) {
    EXPECT_TRUE(fs::is_regular_file(r / "search" / "genotype_normal.svg"));
  }
  if (on_path("gnuplot")) {
    EXPECT_TRUE(fs::is_regular_file(r / "train" / "accuracy.png"));
  }
}

}  // namespace
}  // namespace datanas
