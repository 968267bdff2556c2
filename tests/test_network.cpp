// The evaluation networks (nets/network.h, nets/discrete_cell.h, nets/network_info.h).
//
// Reference numbers: a scratch PyTorch 1.13 script (not part of the project) that rebuilds
// DARTS' cnn/model.py NetworkCIFAR / NetworkImageNet and cnn/operations.py as published
// (quark0/darts), with the Cell generalised to nodes of any number of (op, input) pairs whose
// outputs are summed (identical to DARTS for two-pair nodes). Parameters are counted as DARTS'
// utils.count_parameters_in_MB does (every parameter, "auxiliary" excluded or not); MACs with
// forward hooks on Conv2d (weight.numel() * H_out * W_out) and Linear (weight.numel()) during
// one eval forward of a zero 1x3xSxS batch. DARTS_V2 CIFAR without the head, 3,349,342, is the
// number the DARTS paper reports (3.3M) and METHOD.md quotes (3.35M).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "nets/network.h"
#include "nets/network_info.h"
#include "space/genotype.h"
#include "util/error.h"

using namespace datanas;

namespace {

struct Reference {
  const char* genotype;
  const char* kind;
  int64_t params;            // without the auxiliary head
  int64_t params_auxiliary;  // with it
  int64_t macs;              // at 32 (cifar) or 224 (imagenet)
};

// CIFAR: C = 36, 20 layers, 10 classes. ImageNet: C = 48, 14 layers, 1000 classes.
const Reference kReferences[] = {
    {"DARTS_V1", "cifar", 3169414, 3645840, 500987520},
    {"DARTS_V2", "cifar", 3349342, 3825768, 528359040},
    {"DATA_M4", "cifar", 3321262, 3797688, 507457152},
    {"DATA_M7", "cifar", 3436390, 3912816, 519318144},
    {"DARTS_V1", "imagenet", 4510432, 5771208, 505864704},
    {"DARTS_V2", "imagenet", 4718752, 5979528, 529911552},
    {"DATA_M4", "imagenet", 4882720, 6143496, 527202048},
    {"DATA_M7", "imagenet", 5082304, 6343080, 542922816},
};

NetworkOptions paper_options(const std::string& kind, bool auxiliary) {
  NetworkOptions o;
  o.kind = kind;
  o.auxiliary = auxiliary;
  if (kind == "imagenet") {
    o.init_channels = 48;
    o.layers = 14;
    o.classes = 1000;
  }
  return o;
}

NetworkOptions small_options(int64_t input_channels, bool auxiliary, double drop_path = 0.0) {
  NetworkOptions o;
  o.input_channels = input_channels;
  o.init_channels = 8;
  o.layers = 6;
  o.auxiliary = auxiliary;
  o.drop_path = drop_path;
  return o;
}

}  // namespace

TEST(NetworkParams, MatchDartsReference) {
  for (const Reference& ref : kReferences) {
    SCOPED_TRACE(std::string(ref.genotype) + " " + ref.kind);
    const Genotype genotype = load_genotype(ref.genotype);
    Network plain(genotype, paper_options(ref.kind, false));
    Network with_head(genotype, paper_options(ref.kind, true));
    EXPECT_EQ(count_parameters(*plain), ref.params);
    EXPECT_EQ(count_parameters_without_auxiliary(*plain), ref.params);
    EXPECT_EQ(count_parameters_without_auxiliary(*with_head), ref.params);
    EXPECT_EQ(count_parameters(*with_head), ref.params_auxiliary);
  }
}

TEST(NetworkForward, CifarShapes) {
  torch::manual_seed(0);
  const Genotype genotype = load_genotype("DARTS_V2");
  for (int64_t channels : {3, 1}) {
    const int64_t size = channels == 3 ? 32 : 28;
    SCOPED_TRACE("input " + std::to_string(channels) + "x" + std::to_string(size));
    Network net(genotype, small_options(channels, true));
    const at::Tensor images = torch::randn({2, channels, size, size});
    net->train();
    NetworkOutput out = net->forward(images);
    EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 10}));
    ASSERT_TRUE(out.aux_logits.defined());
    EXPECT_EQ(out.aux_logits.sizes(), (std::vector<int64_t>{2, 10}));
    out.logits.sum().add(out.aux_logits.sum()).backward();  // the graph is differentiable
    net->eval();
    torch::NoGradGuard no_grad;
    out = net->forward(images);
    EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 10}));
    EXPECT_FALSE(out.aux_logits.defined());
  }
}

TEST(NetworkForward, PaperSizeCifarWithoutHeadHasNoAuxLogits) {
  torch::manual_seed(0);
  Network net(load_genotype("DARTS_V2"), paper_options("cifar", false));
  net->train();
  NetworkOutput out = net->forward(torch::randn({2, 3, 32, 32}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_FALSE(out.aux_logits.defined());
}

TEST(NetworkForward, ImageNetShape) {
  torch::manual_seed(0);
  Network net(load_genotype("DARTS_V2"), paper_options("imagenet", true));
  net->eval();
  torch::NoGradGuard no_grad;
  NetworkOutput out = net->forward(torch::randn({1, 3, 224, 224}));
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{1, 1000}));
  EXPECT_FALSE(out.aux_logits.defined());
}

// The cells get the chosen layout whatever the images' channel count: a 1-channel image is NCHW
// and channels-last at once, and LibTorch's stem conv made NCHW of it, so every cell of an
// MNIST-like search ran NCHW.
TEST(NetworkForward, StemOutputIsInTheChosenLayout) {
  for (const std::string kind : {"cifar", "imagenet"}) {
    for (int64_t channels : {1, 3}) {
      for (bool channels_last : {true, false}) {
        NetworkOptions o =
            kind == "cifar" ? small_options(channels, false) : paper_options("imagenet", false);
        o.input_channels = channels;
        o.channels_last = channels_last;
        Network net(load_genotype("DARTS_V2"), o);
        at::Tensor s0;
        const at::Tensor s1 = net->stem(torch::randn({2, channels, 32, 32}), &s0, nullptr);
        const auto layout =
            channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
        const std::string what = kind + " " + std::to_string(channels) + " channels " +
                                 (channels_last ? "channels-last" : "nchw");
        EXPECT_EQ(s1.suggest_memory_format(), layout) << what;
        EXPECT_EQ(s0.suggest_memory_format(), layout) << what;
      }
    }
  }
}

TEST(NetworkForward, RejectsWrongInputChannels) {
  Network net(load_genotype("DARTS_V2"), small_options(1, false));
  EXPECT_THROW(net->forward(torch::zeros({2, 3, 28, 28})), Error);
}

TEST(NetworkDropPath, IdentityInEvalChangesOutputsInTrain) {
  torch::manual_seed(1);
  Network net(load_genotype("DARTS_V2"), small_options(3, false, 0.3));
  const at::Tensor images = torch::randn({4, 3, 32, 32});
  {
    net->eval();
    torch::NoGradGuard no_grad;
    const at::Tensor first = net->forward(images).logits;
    const at::Tensor second = net->forward(images).logits;
    net->set_drop_path(0.0);
    const at::Tensor without = net->forward(images).logits;
    EXPECT_TRUE(torch::equal(first, second));
    EXPECT_TRUE(torch::equal(first, without));
  }
  net->train();
  net->set_drop_path(0.0);
  const at::Tensor plain = net->forward(images).logits;
  EXPECT_TRUE(torch::equal(plain, net->forward(images).logits));  // train mode, no drop-path
  net->set_drop_path(0.3);
  const at::Tensor dropped = net->forward(images).logits;
  EXPECT_FALSE(torch::allclose(plain, dropped));
  EXPECT_THROW(net->set_drop_path(1.0), Error);
  EXPECT_THROW(net->set_drop_path(-0.1), Error);
}

TEST(NetworkDropPath, MaskIsPerSampleAndScaled) {
  torch::manual_seed(2);
  const at::Tensor x = torch::ones({64, 2, 3, 3});
  const at::Tensor y = drop_path(x, 0.25);
  for (int64_t n = 0; n < 64; ++n) {
    const double v = y[n][0][0][0].item<double>();
    EXPECT_TRUE(v == 0.0 || std::abs(v - 1.0 / 0.75) < 1e-6);
    EXPECT_TRUE(torch::equal(y[n], torch::full_like(y[n], v)));  // one decision per sample
  }
  EXPECT_TRUE(torch::equal(drop_path(x, 0.0), x));
}

TEST(NetworkGenotype, MultiOpNodesBuildAndRun) {
  torch::manual_seed(3);
  for (const char* name : {"DATA_M4", "DATA_M7"}) {
    SCOPED_TRACE(name);
    Network net(load_genotype(name), small_options(1, true, 0.2));
    net->train();
    NetworkOutput out = net->forward(torch::randn({2, 1, 28, 28}));
    EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 10}));
    EXPECT_EQ(out.aux_logits.sizes(), (std::vector<int64_t>{2, 10}));
    EXPECT_TRUE(torch::isfinite(out.logits).all().item<bool>());
  }
}

TEST(NetworkGenotype, BadGenotypeRaisesError) {
  const Genotype good = load_genotype("DARTS_V2");
  Genotype bad_input = good;
  bad_input.normal[0][0].input = 2;  // node 0 can only read inputs 0 and 1
  EXPECT_THROW(Network(bad_input, small_options(3, false)), Error);
  Genotype negative_input = good;
  negative_input.reduce[1][1].input = -1;
  EXPECT_THROW(Network(negative_input, small_options(3, false)), Error);
  Genotype bad_op = good;
  bad_op.normal[2][0].op = "conv_9x9";
  EXPECT_THROW(Network(bad_op, small_options(3, false)), Error);
  Genotype none_op = good;
  none_op.reduce[0][0].op = "none";
  EXPECT_THROW(Network(none_op, small_options(3, false)), Error);
  Genotype bad_concat = good;
  bad_concat.normal_concat = {2, 3, 9};
  EXPECT_THROW(Network(bad_concat, small_options(3, false)), Error);
}

TEST(NetworkGenotype, BadOptionsRaiseError) {
  const Genotype genotype = load_genotype("DARTS_V2");
  NetworkOptions o = small_options(3, false);
  o.kind = "mnist";
  EXPECT_THROW(Network(genotype, o), Error);
  o = small_options(3, false);
  o.layers = 0;
  EXPECT_THROW(Network(genotype, o), Error);
  o = small_options(3, false, 1.5);
  EXPECT_THROW(Network(genotype, o), Error);
}

TEST(NetworkInfo, FieldsAreConsistent) {
  const Genotype genotype = load_genotype("DARTS_V2");
  const NetworkOptions options = paper_options("cifar", false);
  const nlohmann::json info = network_info(genotype, options, 32);
  EXPECT_EQ(info["params"].get<int64_t>(), 3349342);
  EXPECT_EQ(info["params_auxiliary"].get<int64_t>(), 3825768);
  EXPECT_EQ(info["macs"].get<int64_t>(), 528359040);
  ASSERT_EQ(info["cells"].size(), static_cast<size_t>(options.layers));
  int64_t cell_params = 0, cell_macs = 0;
  int reductions = 0;
  for (size_t i = 0; i < info["cells"].size(); ++i) {
    const auto& cell = info["cells"][i];
    EXPECT_EQ(cell["index"].get<int64_t>(), static_cast<int64_t>(i));
    const bool reduction = cell["reduction"].get<bool>();
    reductions += reduction;
    const int64_t expected_channels = i < 6 ? 36 : i < 13 ? 72 : 144;  // doubled at 6 and 13
    EXPECT_EQ(cell["channels"].get<int64_t>(), expected_channels);
    EXPECT_EQ(cell["output_channels"].get<int64_t>(), 4 * expected_channels);
    EXPECT_GT(cell["params"].get<int64_t>(), 0);
    EXPECT_GT(cell["macs"].get<int64_t>(), 0);
    cell_params += cell["params"].get<int64_t>();
    cell_macs += cell["macs"].get<int64_t>();
  }
  EXPECT_EQ(reductions, 2);
  EXPECT_TRUE(info["cells"][6]["reduction"].get<bool>());
  EXPECT_TRUE(info["cells"][13]["reduction"].get<bool>());
  EXPECT_LE(cell_params, info["params"].get<int64_t>());
  EXPECT_LE(cell_macs, info["macs"].get<int64_t>());
  // Stem conv (3 -> 108, 3x3 at 32x32) and classifier (576 -> 10) make up the rest.
  EXPECT_EQ(info["macs"].get<int64_t>() - cell_macs, 108 * 3 * 9 * 32 * 32 + 576 * 10);
}

TEST(NetworkInfo, MacsMatchReferenceForAllGenotypes) {
  for (const Reference& ref : kReferences) {
    SCOPED_TRACE(std::string(ref.genotype) + " " + ref.kind);
    const bool imagenet = std::string(ref.kind) == "imagenet";
    const nlohmann::json info = network_info(load_genotype(ref.genotype),
                                             paper_options(ref.kind, false), imagenet ? 224 : 32);
    EXPECT_EQ(info["params"].get<int64_t>(), ref.params);
    EXPECT_EQ(info["params_auxiliary"].get<int64_t>(), ref.params_auxiliary);
    EXPECT_EQ(info["macs"].get<int64_t>(), ref.macs);
  }
}

TEST(NetworkInfo, FashionMnistSize) {
  NetworkOptions options = paper_options("cifar", false);
  options.input_channels = 1;
  const nlohmann::json info = network_info(load_genotype("DATA_M7"), options, 28);
  EXPECT_GT(info["macs"].get<int64_t>(), 0);
  EXPECT_EQ(info["cells"].size(), 20u);
  EXPECT_EQ(info["input_size"].get<int64_t>(), 28);
}
