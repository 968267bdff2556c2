// Ensemble Gumbel-Softmax: binary codes, marginals 1-(1-p)^M, exact support-size law,
// straight-through gradients, the samplers built on it, ADC and the temperature schedule.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "sample/adc.h"
#include "sample/darts.h"
#include "sample/derive.h"
#include "sample/egs.h"
#include "sample/egs_statistics.h"
#include "sample/sampler.h"
#include "util/error.h"

namespace datanas {
namespace {

at::Generator generator(uint64_t seed) { return at::detail::createCPUGenerator(seed); }

SamplerOptions egs_options(int M, Granularity granularity) {
  SamplerOptions o;
  o.name = "egs";
  o.M = M;
  o.granularity = granularity;
  return o;
}

// Alpha with clearly different probabilities, so samples are varied but not uniform.
at::Tensor spread_alpha(const CellSpace& space, uint64_t seed) {
  at::Generator g = generator(seed);
  return at::normal(0.0, 1.0, {space.edges(), space.ops}, g);
}

// P(support size == s) for every s, from the exact set probability summed over all subsets.
std::vector<double> exact_support_sizes(const std::vector<double>& p, int M) {
  const int K = static_cast<int>(p.size());
  std::vector<double> sizes(K + 1, 0.0);
  for (uint32_t set = 1; set < (1u << K); ++set) {
    std::vector<double> members;
    for (int k = 0; k < K; ++k)
      if (set & (1u << k)) members.push_back(p[k]);
    sizes[members.size()] += exact_support_probability(members, M);
  }
  return sizes;
}

double standard_error(double q, int64_t n) {
  q = std::min(1.0, std::max(0.0, q));  // exact zeros may come out as -1e-16
  return std::sqrt(q * (1 - q) / n);
}

TEST(EgsCode, BinaryWithOneToMOnesPerRow) {
  for (int M : {1, 4, 7}) {
    const int64_t rows = 2000, K = 8;
    at::Generator g = generator(10 + M);
    at::Tensor logits = at::normal(0.0, 2.0, {rows, K}, g);
    at::Tensor code = egs_code(logits, egs_noise(M, rows, K, g), 1.0);
    ASSERT_EQ(code.sizes(), logits.sizes());
    at::Tensor binary = (code > 0.5).to(at::kFloat);
    EXPECT_LT((code - binary).abs().max().item<float>(), 1e-6) << "M=" << M;
    at::Tensor ones = binary.sum(1);
    EXPECT_GE(ones.min().item<float>(), 1.0f);
    EXPECT_LE(ones.max().item<float>(), static_cast<float>(M));
    if (M > 1) {
      EXPECT_GT(ones.max().item<float>(), 1.0f) << "M=" << M << " never combined draws";
    }
  }
}

TEST(EgsStatistics, MarginalsAndSupportSizesMatchTheExactLaw) {
  const std::vector<std::vector<double>> distributions = {
      {0.5, 0.3, 0.2}, {0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03}};
  const int64_t draws = 200000;
  for (const auto& p : distributions) {
    for (int M : {1, 4, 7}) {
      EgsStatistics stats = egs_statistics(p, M, draws, /*seed=*/100 * p.size() + M);
      ASSERT_EQ(stats.marginal.size(), p.size());
      for (size_t k = 0; k < p.size(); ++k) {
        const double expected = 1 - std::pow(1 - p[k], M);
        EXPECT_NEAR(stats.marginal[k], expected, 4 * standard_error(expected, draws) + 1e-9)
            << "K=" << p.size() << " M=" << M << " entry " << k;
      }
      const std::vector<double> sizes = exact_support_sizes(p, M);
      ASSERT_EQ(stats.support_size.size(), p.size() + 1);
      EXPECT_EQ(stats.support_size[0], 0.0);
      for (size_t s = 1; s <= p.size(); ++s) {
        EXPECT_NEAR(stats.support_size[s], sizes[s], 4 * standard_error(sizes[s], draws) + 1e-9)
            << "K=" << p.size() << " M=" << M << " size " << s;
        if (static_cast<int>(s) > M) {
          EXPECT_EQ(stats.support_size[s], 0.0);
        }
      }
    }
  }
}

TEST(EgsStatistics, HandComputedSupportSizesForThreeEntries) {
  // p = (0.5, 0.3, 0.2), M = 4: P(size 1) = sum p^4; P(size 3) = 1 - sum (1-p)^4 + sum p^4.
  const double p1 = std::pow(0.5, 4) + std::pow(0.3, 4) + std::pow(0.2, 4);
  const double p3 = 1 - (std::pow(0.5, 4) + std::pow(0.7, 4) + std::pow(0.8, 4)) + p1;
  const std::vector<double> sizes = exact_support_sizes({0.5, 0.3, 0.2}, 4);
  EXPECT_NEAR(sizes[1], p1, 1e-12);
  EXPECT_NEAR(sizes[3], p3, 1e-12);
  EXPECT_NEAR(sizes[2], 1 - p1 - p3, 1e-12);
}

TEST(EgsStatistics, RejectsBadInput) {
  EXPECT_THROW(egs_statistics({}, 4, 10, 1), Error);
  EXPECT_THROW(egs_statistics({0.5, -0.1}, 4, 10, 1), Error);
  EXPECT_THROW(egs_statistics({0.0, 0.0}, 4, 10, 1), Error);
  EXPECT_THROW(egs_statistics({0.5, 0.5}, 0, 10, 1), Error);
}

TEST(EgsCode, StraightThroughGradientForOneDrawIsTheSoftmaxGradient) {
  const int64_t rows = 5, K = 8;
  const double tau = 2.0;
  at::Generator g = generator(3);
  at::Tensor logits = at::normal(0.0, 1.0, {rows, K}, g).requires_grad_(true);
  at::Tensor noise = egs_noise(1, rows, K, g);
  at::Tensor c = at::normal(0.0, 1.0, {rows, K}, g);

  at::Tensor b = egs_code(logits, noise, tau);
  at::Tensor grad_b = torch::autograd::grad({(c * b).sum()}, {logits})[0];

  at::Tensor gumbel = -at::log(-at::log(noise[0]));
  at::Tensor y = at::softmax((logits + gumbel) / tau, -1);
  at::Tensor grad_y = torch::autograd::grad({(c * y).sum()}, {logits})[0];
  EXPECT_TRUE(at::allclose(grad_b, grad_y, 1e-5, 1e-7)) << grad_b << grad_y;
  // The forward value is the one-hot argmax of y.
  EXPECT_TRUE(at::equal(b.detach().argmax(1), y.detach().argmax(1)));
}

TEST(EgsCode, GradientReachesEveryLogitForFourDraws) {
  const int64_t rows = 6, K = 8;
  at::Generator g = generator(4);
  at::Tensor logits = at::normal(0.0, 1.0, {rows, K}, g).requires_grad_(true);
  at::Tensor c = at::normal(0.0, 1.0, {rows, K}, g);
  at::Tensor b = egs_code(logits, egs_noise(4, rows, K, g), 1.0);
  at::Tensor grad = torch::autograd::grad({(c * b).sum()}, {logits})[0];
  EXPECT_GT(grad.abs().min().item<float>(), 0.0f) << grad;
}

TEST(EgsCode, TemperatureKeepsTheCodeButChangesTheGradient) {
  const int64_t rows = 50, K = 8;
  at::Generator g = generator(5);
  at::Tensor logits = at::normal(0.0, 1.0, {rows, K}, g).requires_grad_(true);
  at::Tensor noise = egs_noise(4, rows, K, g);
  at::Tensor c = at::normal(0.0, 1.0, {rows, K}, g);
  at::Tensor cold = egs_code(logits, noise, 1.0);
  at::Tensor hot = egs_code(logits, noise, 5.0);
  EXPECT_TRUE(at::equal(cold.detach() > 0.5, hot.detach() > 0.5));
  at::Tensor grad_cold = torch::autograd::grad({(c * cold).sum()}, {logits})[0];
  at::Tensor grad_hot = torch::autograd::grad({(c * hot).sum()}, {logits})[0];
  EXPECT_GT((grad_cold - grad_hot).abs().max().item<float>(), 1e-3);
}

// Checks the structure of a sample: `selected` marks exactly the non-zero weights, and every
// group has between 1 and M selected entries; normalised weights sum to 1 per group.
void check_sample(const Sampler& sampler, const CellWeights& w, int M, bool plain_sum) {
  const CellSpace& space = sampler.space();
  ASSERT_EQ(w.weights.sizes(), (std::vector<int64_t>{space.edges(), space.ops}));
  ASSERT_EQ(w.selected.size(), static_cast<size_t>(space.edges() * space.ops));
  at::Tensor flat = w.weights.detach().reshape({-1});
  for (const Sampler::Group& group : sampler.groups()) {
    int count = 0;
    double sum = 0;
    for (int64_t i = group.start; i < group.start + group.size; ++i) {
      const float value = flat[i].item<float>();
      sum += value;
      if (w.selected[i]) {
        ++count;
        EXPECT_GT(value, 0.0f);
      } else {
        EXPECT_NEAR(value, 0.0f, 1e-6);
      }
      if (plain_sum) {
        EXPECT_NEAR(value, w.selected[i] ? 1.0f : 0.0f, 1e-6);
      }
    }
    EXPECT_GE(count, 1);
    EXPECT_LE(count, M);
    if (!plain_sum) {
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

TEST(EgsSampler, EdgeAndNodeGranularityDecideDifferentGroups) {
  const CellSpace space{4, 8};
  at::Tensor alpha = spread_alpha(space, 1);
  for (int M : {1, 4}) {
    auto edge = make_sampler(egs_options(M, Granularity::kEdge), space);
    auto node = make_sampler(egs_options(M, Granularity::kNode), space);
    ASSERT_EQ(edge->groups().size(), 14u);
    ASSERT_EQ(node->groups().size(), 4u);
    EXPECT_EQ(node->groups()[3].start, 9 * 8);
    EXPECT_EQ(node->groups()[3].size, 5 * 8);
    at::Generator g = generator(20 + M);
    bool node_left_an_edge_empty = false;
    for (int draw = 0; draw < 100; ++draw) {
      CellWeights e = edge->sample(alpha, g);
      CellWeights n = node->sample(alpha, g);
      check_sample(*edge, e, M, false);
      check_sample(*node, n, M, false);
      for (int row = 0; row < space.edges(); ++row) {
        int ones = 0;
        for (int k = 0; k < space.ops; ++k) ones += n.is_selected(row, k, space.ops);
        node_left_an_edge_empty |= ones == 0;
      }
    }
    EXPECT_TRUE(node_left_an_edge_empty) << "node granularity must be able to drop edges";
  }
}

TEST(EgsSampler, PlainSumWeightsAreTheCode) {
  const CellSpace space{4, 8};
  SamplerOptions options = egs_options(4, Granularity::kEdge);
  options.plain_sum = true;
  auto sampler = make_sampler(options, space);
  at::Generator g = generator(8);
  at::Tensor alpha = spread_alpha(space, 2);
  for (int draw = 0; draw < 20; ++draw) check_sample(*sampler, sampler->sample(alpha, g), 4, true);
}

TEST(Sampler, FixedSetsExactlyTheListedEntries) {
  const CellSpace space{4, 8};
  const std::vector<GenotypeNode> cell = {
      {{"sep_conv_3x3", 0}, {"skip_connect", 1}},
      {{"sep_conv_3x3", 1}, {"dil_conv_5x5", 1}, {"max_pool_3x3", 2}},
      {{"avg_pool_3x3", 3}},
      {{"sep_conv_5x5", 4}, {"dil_conv_3x3", 0}},
  };
  for (Granularity granularity : {Granularity::kNode, Granularity::kEdge}) {
    auto sampler = make_sampler(egs_options(4, granularity), space);
    CellWeights w = sampler->fixed(cell);
    std::vector<uint8_t> expected(space.edges() * space.ops, 0);
    for (size_t node = 0; node < cell.size(); ++node)
      for (const OpInput& pair : cell[node])
        expected[CellSpace::edge(node, pair.input) * space.ops + cnn_op_index(pair.op)] = 1;
    EXPECT_EQ(w.selected, expected);
    // Node 1 holds two ops on input 1 and one on input 2.
    const float edge3_weight =
        w.weights[CellSpace::edge(1, 1)][cnn_op_index("sep_conv_3x3")].item<float>();
    EXPECT_NEAR(edge3_weight, granularity == Granularity::kNode ? 1.0f / 3 : 0.5f, 1e-6);
    // Groups that hold entries sum to one; edges absent from the genotype weigh nothing.
    at::Tensor flat = w.weights.reshape({-1});
    for (const auto& group : sampler->groups()) {
      const float sum = flat.slice(0, group.start, group.start + group.size).sum().item<float>();
      bool any = false;
      for (int64_t i = group.start; i < group.start + group.size; ++i) any |= expected[i] != 0;
      EXPECT_NEAR(sum, any ? 1.0f : 0.0f, 1e-6);
    }
  }
  auto sampler = make_sampler(egs_options(4, Granularity::kNode), space);
  std::vector<GenotypeNode> bad(4);
  bad[0].push_back({"conv_9x9", 0});
  EXPECT_THROW(sampler->fixed(bad), Error);
}

TEST(DartsSampler, WeightsAreTheSoftmaxPerEdge) {
  const CellSpace space{4, 8};
  SamplerOptions options;
  options.name = "darts";
  options.granularity = Granularity::kNode;  // DARTS always decides per edge
  auto sampler = make_sampler(options, space);
  EXPECT_EQ(sampler->groups().size(), 14u);
  at::Tensor alpha = spread_alpha(space, 4);
  at::Generator g = generator(1);
  CellWeights w = sampler->sample(alpha, g);
  EXPECT_TRUE(at::allclose(w.weights, at::softmax(alpha, 1), 1e-6, 1e-7));
  EXPECT_EQ(w.selected, std::vector<uint8_t>(space.edges() * space.ops, 1));
}

TEST(Adc, ZeroAtTheCodeAndPullsTheProbabilitiesTowardsIt) {
  at::Tensor p = at::softmax(at::randn({3, 8}), 1);
  EXPECT_EQ(adc_term(p, p).item<float>(), 0.0f);

  const CellSpace space{4, 8};
  auto sampler = make_sampler(egs_options(4, Granularity::kEdge), space);
  at::Generator g = generator(11);
  at::Tensor alpha = sampler->initial_alpha(g).requires_grad_(true);
  CellWeights w = sampler->sample(alpha, g);
  auto distance = [&]() {
    at::NoGradGuard no_grad;
    return (sampler->probabilities(alpha) - w.weights.detach()).abs().mean().item<double>();
  };
  const double before = distance();
  torch::optim::SGD optimizer({alpha}, torch::optim::SGDOptions(0.5));
  for (int step = 0; step < 5; ++step) {
    optimizer.zero_grad();
    at::Tensor loss = adc_term(sampler->probabilities(alpha), w.weights);
    loss.backward();
    EXPECT_GT(alpha.grad().abs().sum().item<float>(), 0.0f);
    optimizer.step();
  }
  EXPECT_LT(distance(), before - 1e-4);
}

TEST(Sampler, TemperatureAnnealsLinearly) {
  SamplerOptions options = egs_options(4, Granularity::kNode);
  options.tau_max = 5.0;
  options.tau_min = 1.0;
  auto sampler = make_sampler(options, CellSpace{4, 8});
  const int epochs = 5;
  sampler->set_epoch(0, epochs);
  EXPECT_DOUBLE_EQ(sampler->temperature(), 5.0);
  sampler->set_epoch(epochs - 1, epochs);
  EXPECT_DOUBLE_EQ(sampler->temperature(), 1.0);
  sampler->set_epoch(1, epochs);
  EXPECT_DOUBLE_EQ(sampler->temperature(), 4.0);
  sampler->set_epoch(2, epochs);
  EXPECT_DOUBLE_EQ(sampler->temperature(), 3.0);
  // Every schedule starts at tau_max, a one-epoch search too (so a run extended with
  // --resume --epochs repeats the first epoch of the longer schedule).
  sampler->set_epoch(0, 1);
  EXPECT_DOUBLE_EQ(sampler->temperature(), 5.0);
}

TEST(Sampler, MakeSamplerValidates) {
  const CellSpace space{4, 8};
  SamplerOptions bogus;
  bogus.name = "bogus";
  EXPECT_THROW(make_sampler(bogus, space), Error);
  EXPECT_THROW(make_sampler(egs_options(0, Granularity::kNode), space), Error);
  SamplerOptions bad_tau = egs_options(4, Granularity::kNode);
  bad_tau.tau_min = 2.0;
  bad_tau.tau_max = 1.0;
  EXPECT_THROW(make_sampler(bad_tau, space), Error);
  SamplerOptions gdas = egs_options(4, Granularity::kEdge);
  gdas.name = "gdas";
  EXPECT_EQ(make_sampler(gdas, space)->options().M, 1);
  EXPECT_THROW(parse_granularity("diag"), Error);
  EXPECT_THROW(parse_parametrisation("sigmoid"), Error);
}

TEST(Sampler, ReluParametrisationClipsAndNormalisesPerGroup) {
  SamplerOptions options = egs_options(4, Granularity::kNode);
  options.parametrisation = Parametrisation::kRelu;
  auto sampler = make_sampler(options, CellSpace{4, 8});
  at::Generator g = generator(2);
  at::Tensor alpha = sampler->initial_alpha(g);
  EXPECT_NEAR(alpha.mean().item<double>(), 1.0, 1e-3);
  alpha[0][3] = -2.0;
  at::Tensor p = sampler->probabilities(alpha);
  EXPECT_EQ(p[0][3].item<float>(), 0.0f);
  for (const auto& group : sampler->groups())
    EXPECT_NEAR(p.reshape({-1}).slice(0, group.start, group.start + group.size).sum().item<float>(),
                1.0f, 1e-5);
}

}  // namespace
}  // namespace datanas
