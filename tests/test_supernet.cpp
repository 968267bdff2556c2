// The supernet: output shapes, reduction layout, and the exactness of the fast execution modes
// (kSelected and kArchitecture) against the dense reference.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "nets/supernet.h"
#include "sample/sampler.h"
#include "space/ops.h"

namespace datanas {
namespace {

SupernetOptions tiny(int64_t input_channels) {
  SupernetOptions o;
  o.input_channels = input_channels;
  o.init_channels = 4;
  o.layers = 3;
  o.classes = 10;
  return o;
}

std::unique_ptr<Sampler> egs(int M, Granularity granularity) {
  SamplerOptions o;
  o.name = "egs";
  o.M = M;
  o.granularity = granularity;
  return make_sampler(o, CellSpace{4, 8});
}

at::Generator generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

int64_t parameter_count(torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters()) total += p.numel();
  return total;
}

// max |a - b| <= rel * max |b| (plus a tiny absolute floor).
void expect_close(const at::Tensor& a, const at::Tensor& b, double rel, const std::string& what) {
  const double scale = b.abs().max().item<double>();
  const double diff = (a - b).abs().max().item<double>();
  EXPECT_LE(diff, rel * scale + 1e-9) << what << ": max diff " << diff << ", scale " << scale;
}

struct Alphas {
  at::Tensor normal, reduce;
};

Alphas make_alphas(uint64_t seed) {
  at::Generator g = generator(seed);
  return {at::normal(0.0, 1.0, {14, 8}, g).requires_grad_(true),
          at::normal(0.0, 1.0, {14, 8}, g).requires_grad_(true)};
}

// The cells get the chosen layout whatever the images' channel count (a 1-channel image is NCHW
// and channels-last at once, and LibTorch's stem conv made NCHW of it).
TEST(Supernet, StemOutputIsInTheChosenLayout) {
  for (int64_t channels : {1, 3}) {
    for (bool channels_last : {true, false}) {
      SupernetOptions o = tiny(channels);
      o.channels_last = channels_last;
      Supernet net(o);
      const at::Tensor s = net->stem(torch::randn({2, channels, 28, 28}));
      EXPECT_EQ(s.suggest_memory_format(),
                channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous)
          << channels << " channels " << (channels_last ? "channels-last" : "nchw");
    }
  }
}

TEST(Supernet, OutputShapes) {
  torch::manual_seed(0);
  auto sampler = egs(4, Granularity::kNode);
  Alphas alphas = make_alphas(1);
  at::Generator g = generator(2);
  for (auto [channels, size] : {std::make_pair(1, 28), std::make_pair(3, 32)}) {
    Supernet net(tiny(channels));
    for (ExecMode mode : {ExecMode::kDense, ExecMode::kSelected, ExecMode::kArchitecture}) {
      at::Tensor logits =
          net->forward(torch::randn({3, channels, size, size}), sampler->sample(alphas.normal, g),
                       sampler->sample(alphas.reduce, g), mode);
      EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{3, 10}));
      EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
    }
  }
  SupernetOptions bad = tiny(1);
  bad.layers = 2;
  EXPECT_ANY_THROW(Supernet{bad});
}

TEST(Supernet, ReductionLayers) {
  EXPECT_TRUE(is_reduction_layer(2, 8));
  EXPECT_TRUE(is_reduction_layer(5, 8));
  for (int layer : {0, 1, 3, 4, 6, 7}) EXPECT_FALSE(is_reduction_layer(layer, 8)) << layer;
  EXPECT_TRUE(is_reduction_layer(1, 5));
  EXPECT_TRUE(is_reduction_layer(3, 5));
  EXPECT_FALSE(is_reduction_layer(2, 5));
  EXPECT_FALSE(is_reduction_layer(0, 3));
  // Structure: only reduction cells have FactorizedReduce skip ops, on the edges that read the
  // cell inputs (edge 2 is node 1 reading c_{k-2}; edge 4 is node 1 reading node 0), and
  // the cell after a reduction preprocesses c_{k-2} with a FactorizedReduce.
  SupernetOptions o = tiny(1);
  o.layers = 5;
  Supernet net(o);
  const auto params = net->named_parameters();
  for (int layer = 0; layer < 5; ++layer) {
    const std::string cell = "cell" + std::to_string(layer);
    EXPECT_EQ(params.contains(cell + ".edge0.skip_connect.even.weight"),
              is_reduction_layer(layer, 5))
        << cell;
    EXPECT_EQ(params.contains(cell + ".edge2.skip_connect.even.weight"),
              is_reduction_layer(layer, 5))
        << cell;
    EXPECT_FALSE(params.contains(cell + ".edge4.skip_connect.even.weight")) << cell;
    EXPECT_EQ(params.contains(cell + ".preprocess0.even.weight"),
              layer > 0 && is_reduction_layer(layer - 1, 5))
        << cell;
  }
  // Channels double at each reduction: the classifier reads multiplier * 4C.
  EXPECT_EQ(params["classifier.weight"].size(1), 4 * 4 * o.init_channels);
}

TEST(Supernet, ParameterCountIndependentOfMode) {
  Supernet net(tiny(1));
  const int64_t before = parameter_count(*net);
  auto sampler = egs(2, Granularity::kEdge);
  Alphas alphas = make_alphas(3);
  at::Generator g = generator(4);
  for (ExecMode mode : {ExecMode::kSelected, ExecMode::kArchitecture, ExecMode::kDense}) {
    net->forward(torch::randn({2, 1, 28, 28}), sampler->sample(alphas.normal, g),
                 sampler->sample(alphas.reduce, g), mode);
    EXPECT_EQ(parameter_count(*net), before);
  }
  EXPECT_GT(before, 0);
}

// Dense and selected execution give the same logits for EGS weights (unselected entries weigh
// exactly zero), in eval and in train mode.
TEST(Supernet, DenseAndSelectedAgree) {
  for (Granularity granularity : {Granularity::kNode, Granularity::kEdge}) {
    for (int M : {1, 4}) {
      torch::manual_seed(5);
      Supernet net(tiny(1));
      auto sampler = egs(M, granularity);
      Alphas alphas = make_alphas(6);
      at::Generator g = generator(7 + M);
      at::Tensor images = torch::randn({4, 1, 28, 28});
      for (bool train : {true, false}) {
        net->train(train);
        for (int draw = 0; draw < 2; ++draw) {
          CellWeights normal = sampler->sample(alphas.normal, g);
          CellWeights reduce = sampler->sample(alphas.reduce, g);
          at::NoGradGuard no_grad;
          at::Tensor dense = net->forward(images, normal, reduce, ExecMode::kDense);
          at::Tensor selected = net->forward(images, normal, reduce, ExecMode::kSelected);
          expect_close(selected, dense, 1e-5,
                       granularity_name(granularity) + " M=" + std::to_string(M) +
                           (train ? " train" : " eval"));
        }
      }
    }
  }
}

// The architecture mode gives the dense loss and the dense alpha gradients.
TEST(Supernet, ArchitectureModeMatchesDenseLossAndAlphaGradients) {
  for (Granularity granularity : {Granularity::kNode, Granularity::kEdge}) {
    for (int M : {1, 4}) {
      torch::manual_seed(8);
      Supernet net(tiny(1));
      net->train();
      auto sampler = egs(M, granularity);
      Alphas alphas = make_alphas(9);
      at::Tensor images = torch::randn({4, 1, 28, 28});
      at::Tensor labels = torch::randint(0, 10, {4}, at::kLong);
      std::vector<at::Tensor> losses, grads;
      for (ExecMode mode : {ExecMode::kDense, ExecMode::kArchitecture}) {
        at::Generator g = generator(10 + M);  // the same draws for both modes
        CellWeights normal = sampler->sample(alphas.normal, g);
        CellWeights reduce = sampler->sample(alphas.reduce, g);
        at::Tensor loss =
            at::cross_entropy_loss(net->forward(images, normal, reduce, mode), labels);
        auto g_alpha = torch::autograd::grad({loss}, {alphas.normal, alphas.reduce});
        losses.push_back(loss.detach());
        grads.push_back(at::cat({g_alpha[0].reshape({-1}), g_alpha[1].reshape({-1})}));
      }
      const std::string what = granularity_name(granularity) + " M=" + std::to_string(M);
      expect_close(losses[1], losses[0], 1e-5, what + " loss");
      expect_close(grads[1], grads[0], 1e-4, what + " alpha gradient");
      EXPECT_GT(grads[0].abs().max().item<double>(), 0.0) << what;
      // Straight-through: unselected entries get gradient too (edge mode with M = 1 leaves
      // seven of eight entries of every edge unselected).
      EXPECT_GT((grads[1] != 0).sum().item<int64_t>(), 14 * 8) << what;
    }
  }
}

// In the weight step (kSelected) only selected ops take part: the others get no gradient.
TEST(Supernet, SelectedModeLeavesUnselectedOpsWithoutGradient) {
  torch::manual_seed(11);
  Supernet net(tiny(1));
  net->train();
  auto sampler = egs(2, Granularity::kNode);
  Alphas alphas = make_alphas(12);
  at::Generator g = generator(13);
  CellWeights normal = sampler->sample(alphas.normal.detach(), g);
  CellWeights reduce = sampler->sample(alphas.reduce.detach(), g);
  at::Tensor loss = at::cross_entropy_loss(
      net->forward(torch::randn({4, 1, 28, 28}), normal, reduce, ExecMode::kSelected),
      torch::randint(0, 10, {4}, at::kLong));
  loss.backward();
  int checked_unselected = 0, selected_with_grad = 0;
  for (const auto& item : net->named_parameters()) {
    // cell<L>.edge<E>.<op>.<...>
    const std::string& name = item.key();
    if (name.rfind("cell", 0) != 0 || name.find(".edge") == std::string::npos) continue;
    const int layer = std::stoi(name.substr(4));
    const size_t edge_at = name.find(".edge") + 5;
    const int edge = std::stoi(name.substr(edge_at));
    const size_t op_at = name.find('.', edge_at) + 1;
    const std::string op = name.substr(op_at, name.find('.', op_at) - op_at);
    const int k = cnn_op_index(op);
    ASSERT_GE(k, 0) << name;
    const CellWeights& w = is_reduction_layer(layer, 3) ? reduce : normal;
    const at::Tensor& grad = item.value().grad();
    if (w.is_selected(edge, k, 8)) {
      selected_with_grad += grad.defined() && grad.abs().sum().item<double>() > 0;
    } else {
      ++checked_unselected;
      EXPECT_TRUE(!grad.defined() || grad.abs().sum().item<double>() == 0) << name;
    }
  }
  EXPECT_GT(checked_unselected, 100);
  EXPECT_GT(selected_with_grad, 0);
}

// Cell i reads the outputs of cells i - 2 and i - 1 (the stem's where there is none): the
// supernet runs the preprocessings of one state together (and writes its gradient once), which
// must give the logits and every gradient of the cells run one by one on their inputs. Five
// layers: a FactorizedReduce after each reduction, three readers of the stem.
TEST(Supernet, SharedPreprocessingMatchesTheCellsOneByOne) {
  torch::manual_seed(14);
  SupernetOptions o = tiny(3);
  o.layers = 5;
  Supernet net(o);
  net->train();
  auto sampler = egs(2, Granularity::kNode);
  Alphas alphas = make_alphas(15);
  at::Generator g = generator(16);
  const CellWeights normal = sampler->sample(alphas.normal.detach(), g);
  const CellWeights reduce = sampler->sample(alphas.reduce.detach(), g);
  const at::Tensor images = torch::randn({3, 3, 16, 16});
  at::Tensor classifier_weight, classifier_bias;
  for (const auto& item : net->named_parameters()) {
    if (item.key() == "classifier.weight") classifier_weight = item.value();
    if (item.key() == "classifier.bias") classifier_bias = item.value();
  }
  auto one_by_one = [&] {
    at::Tensor s0 = net->stem(images), s1 = s0;
    for (SearchCell cell : net->cells()) {
      at::Tensor next =
          cell->forward(s0, s1, cell->reduction() ? reduce : normal, ExecMode::kSelected);
      s0 = s1;
      s1 = next;
    }
    return at::linear(at::adaptive_avg_pool2d(s1, {1, 1}).flatten(1), classifier_weight,
                      classifier_bias);
  };
  auto shared = [&] { return net->forward(images, normal, reduce, ExecMode::kSelected); };
  const at::Tensor up = torch::randn({3, 10});
  std::vector<std::vector<at::Tensor>> runs;
  for (const auto& run :
       {std::function<at::Tensor()>(shared), std::function<at::Tensor()>(one_by_one)}) {
    for (auto& p : net->parameters()) p.mutable_grad() = at::Tensor();
    const at::Tensor logits = run();
    (logits * up).sum().backward();
    std::vector<at::Tensor> out = {logits.detach()};
    for (auto& p : net->parameters())
      out.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    runs.push_back(out);
  }
  const auto names = net->named_parameters().keys();
  expect_close(runs[0][0], runs[1][0], 1e-5, "logits");
  for (size_t i = 1; i < runs[0].size(); ++i)
    expect_close(runs[0][i], runs[1][i], 1e-4, "gradient of " + names[i - 1]);
}

}  // namespace
}  // namespace datanas
