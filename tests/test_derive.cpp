// Derivation of the most probable EGS code: the exact support probability, the top-t rule, and
// the genotypes EGS and DARTS derive from hand-made probability tables.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <vector>

#include "sample/darts.h"
#include "sample/derive.h"
#include "sample/egs.h"
#include "sample/sampler.h"

namespace datanas {
namespace {

// P(the M draws hit exactly the set `mask`) for every mask, by enumerating all K^M tuples.
std::map<uint32_t, double> brute_force_supports(const std::vector<double>& p, int M) {
  const int K = static_cast<int>(p.size());
  std::map<uint32_t, double> result;
  std::vector<int> tuple(M, 0);
  while (true) {
    uint32_t mask = 0;
    double probability = 1.0;
    for (int draw : tuple) {
      mask |= 1u << draw;
      probability *= p[draw];
    }
    result[mask] += probability;
    int position = 0;
    while (position < M && ++tuple[position] == K) tuple[position++] = 0;
    if (position == M) break;
  }
  return result;
}

std::vector<double> members(const std::vector<double>& p, uint32_t mask) {
  std::vector<double> out;
  for (size_t k = 0; k < p.size(); ++k)
    if (mask & (1u << k)) out.push_back(p[k]);
  return out;
}

TEST(ExactSupportProbability, MatchesBruteForceEnumeration) {
  const std::vector<double> p = {0.4, 0.3, 0.2, 0.1};
  for (int M = 1; M <= 5; ++M) {
    const auto brute = brute_force_supports(p, M);
    double total = 0.0;
    for (uint32_t mask = 1; mask < 16; ++mask) {
      const std::vector<double> set = members(p, mask);
      const double exact = exact_support_probability(set, M);
      const auto it = brute.find(mask);
      EXPECT_NEAR(exact, it == brute.end() ? 0.0 : it->second, 1e-12)
          << "M=" << M << " mask " << mask;
      if (static_cast<int>(set.size()) <= M) {
        total += exact;
      } else {
        EXPECT_NEAR(exact, 0.0, 1e-12) << "a set larger than M cannot be hit";
      }
    }
    EXPECT_NEAR(total, 1.0, 1e-12) << "M=" << M;
  }
}

TEST(ExactSupportProbability, SimpleCases) {
  EXPECT_NEAR(exact_support_probability({0.3}, 4), std::pow(0.3, 4), 1e-15);
  // Two entries: (a+b)^M - a^M - b^M.
  EXPECT_NEAR(exact_support_probability({0.5, 0.2}, 3), std::pow(0.7, 3) - 0.125 - 0.008, 1e-15);
  EXPECT_NEAR(exact_support_probability({0.5, 0.5}, 1), 0.0, 1e-15);
}

TEST(MostProbableSupport, PeakedDistributionKeepsOneEntry) {
  // P_1 = 0.9^4 = 0.656 beats P_2 = 0.95^4 - 0.9^4 - 0.05^4 = 0.158.
  EXPECT_EQ(most_probable_support({0.05, 0.9, 0.03, 0.02}, 4), std::vector<int>{1});
}

TEST(MostProbableSupport, UniformKeepsTheSizeThatMaximisesPt) {
  for (int M : {1, 2, 3, 4, 7}) {
    // Uniform over 3: P_t = C-free exact formula on t entries of 1/3 each.
    int best = 1;
    double best_p = -1;
    for (int t = 1; t <= std::min(M, 3); ++t) {
      double pt = 0;  // sum_{u=0..t} (-1)^(t-u) C(t,u) (u/3)^M
      for (int u = 0; u <= t; ++u) {
        const double choose = t == 3 && (u == 1 || u == 2) ? 3 : (t == 2 && u == 1 ? 2 : 1);
        pt += ((t - u) % 2 ? -1 : 1) * choose * std::pow(u / 3.0, M);
      }
      if (pt > best_p + 1e-15) best_p = pt, best = t;
    }
    const std::vector<int> kept = most_probable_support({1, 1, 1}, M);
    EXPECT_EQ(static_cast<int>(kept.size()), best) << "M=" << M;
  }
  // By hand: M=4 gives P = (1/81, 14/81, 36/81): all three; M=2 gives (1/9, 2/9): two.
  EXPECT_EQ(most_probable_support({1, 1, 1}, 4), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(most_probable_support({1, 1, 1}, 2), (std::vector<int>{0, 1}));
}

TEST(MostProbableSupport, SortsClipsAndNormalises) {
  // Unnormalised, with a negative entry: same answer as the normalised clipped distribution.
  EXPECT_EQ(most_probable_support({-3.0, 2.0, 6.0, 2.0}, 4), (std::vector<int>{2, 1, 3}));
  EXPECT_EQ(most_probable_support({0.0, 0.25, 0.75, 0.0}, 7), (std::vector<int>{2, 1}));
  EXPECT_EQ(most_probable_support({0.0, 0.0}, 4).size(), 1u);  // defined, never empty
  EXPECT_TRUE(most_probable_support({}, 4).empty());
}

// A 14 x 8 table set entry by entry: entries[{edge, op name}] = p.
at::Tensor table(const std::map<std::pair<int, std::string>, double>& entries) {
  at::Tensor t = at::zeros({14, 8}, at::kDouble);
  for (const auto& [key, p] : entries) t[key.first][cnn_op_index(key.second)] = p;
  return t.to(at::kFloat);
}

std::unique_ptr<Sampler> egs(Granularity granularity, int M) {
  SamplerOptions o;
  o.name = "egs";
  o.M = M;
  o.granularity = granularity;
  return make_sampler(o, CellSpace{4, 8});
}

int edge(int node, int input) { return CellSpace::edge(node, input); }

TEST(EgsDerive, NodeGranularity) {
  at::Tensor probs = table({
      // node 0: peaked -> one pair
      {{edge(0, 0), "sep_conv_3x3"}, 0.9},
      {{edge(0, 1), "skip_connect"}, 0.1},
      // node 1: two ops on one input, half each -> both (P_2 = 0.875)
      {{edge(1, 1), "sep_conv_3x3"}, 0.5},
      {{edge(1, 1), "dil_conv_3x3"}, 0.5},
      // node 2: none 0.2 on each of its four edges, merged to 0.8: {none, max_pool} is the
      // most probable set (0.589 > 0.8^4), none is dropped. Unmerged, five entries of 0.2
      // would keep four of them.
      {{edge(2, 0), "none"}, 0.2},
      {{edge(2, 1), "none"}, 0.2},
      {{edge(2, 2), "none"}, 0.2},
      {{edge(2, 3), "none"}, 0.2},
      {{edge(2, 3), "max_pool_3x3"}, 0.2},
      // node 3: none wins alone -> the best non-none pair
      {{edge(3, 0), "none"}, 0.97},
      {{edge(3, 4), "avg_pool_3x3"}, 0.02},
      {{edge(3, 0), "skip_connect"}, 0.01},
  });
  const std::vector<GenotypeNode> expected = {
      {{"sep_conv_3x3", 0}},
      {{"sep_conv_3x3", 1}, {"dil_conv_3x3", 1}},
      {{"max_pool_3x3", 3}},
      {{"avg_pool_3x3", 4}},
  };
  EXPECT_EQ(egs(Granularity::kNode, 4)->derive(probs), expected);
  // M = 1: the single most probable entry of each node, none excepted.
  const std::vector<GenotypeNode> single = {
      {{"sep_conv_3x3", 0}}, {{"sep_conv_3x3", 1}}, {{"max_pool_3x3", 3}}, {{"avg_pool_3x3", 4}}};
  EXPECT_EQ(egs(Granularity::kNode, 1)->derive(probs), single);
}

TEST(EgsDerive, EdgeGranularity) {
  at::Tensor probs = table({
      // node 0: edge from input 0 is only none -> absent
      {{edge(0, 0), "none"}, 1.0},
      {{edge(0, 1), "sep_conv_3x3"}, 0.9},
      {{edge(0, 1), "skip_connect"}, 0.1},
      // node 1: two ops on input 0, a none-only edge, and {max_pool, none} on input 2
      {{edge(1, 0), "sep_conv_3x3"}, 0.5},
      {{edge(1, 0), "dil_conv_3x3"}, 0.5},
      {{edge(1, 1), "none"}, 1.0},
      {{edge(1, 2), "max_pool_3x3"}, 0.6},
      {{edge(1, 2), "none"}, 0.4},
      // node 2: every edge keeps only none -> the best non-none pair of the node
      {{edge(2, 0), "none"}, 0.99},
      {{edge(2, 0), "avg_pool_3x3"}, 0.01},
      {{edge(2, 1), "none"}, 1.0},
      {{edge(2, 2), "none"}, 1.0},
      {{edge(2, 3), "none"}, 1.0},
      // node 3: uniform over three ops on input 4
      {{edge(3, 0), "none"}, 1.0},
      {{edge(3, 1), "none"}, 1.0},
      {{edge(3, 2), "none"}, 1.0},
      {{edge(3, 3), "none"}, 1.0},
      {{edge(3, 4), "sep_conv_5x5"}, 1.0 / 3},
      {{edge(3, 4), "dil_conv_3x3"}, 1.0 / 3},
      {{edge(3, 4), "dil_conv_5x5"}, 1.0 / 3},
  });
  const std::vector<GenotypeNode> expected = {
      {{"sep_conv_3x3", 1}},
      {{"max_pool_3x3", 2}, {"sep_conv_3x3", 0}, {"dil_conv_3x3", 0}},
      {{"avg_pool_3x3", 0}},
      {{"sep_conv_5x5", 4}, {"dil_conv_3x3", 4}, {"dil_conv_5x5", 4}},
  };
  EXPECT_EQ(egs(Granularity::kEdge, 4)->derive(probs), expected);
  // M = 2 keeps two of the three uniform ops (P_2 = 2/9 > P_1 = 1/9).
  std::vector<GenotypeNode> two = egs(Granularity::kEdge, 2)->derive(probs);
  EXPECT_EQ(two[3], (GenotypeNode{{"sep_conv_5x5", 4}, {"dil_conv_3x3", 4}}));
}

TEST(EgsDerive, ProbabilitiesOfASamplerDeriveAValidCell) {
  for (Granularity granularity : {Granularity::kEdge, Granularity::kNode}) {
    auto sampler = egs(granularity, 4);
    at::Generator g = at::detail::createCPUGenerator(5);
    at::Tensor probs = sampler->probabilities(at::normal(0.0, 2.0, {14, 8}, g));
    Genotype genotype = derive_genotype(*sampler, probs, probs, 4);
    EXPECT_NO_THROW(validate_genotype(genotype));
    for (const GenotypeNode& node : genotype.normal) {
      EXPECT_GE(node.size(), 1u);
      if (granularity == Granularity::kNode) {
        EXPECT_LE(node.size(), 4u);
      }
      for (const OpInput& pair : node) EXPECT_NE(pair.op, "none");
    }
  }
}

TEST(DartsDerive, TopTwoEdgesWithTheirBestNonNoneOp) {
  at::Tensor probs = table({
      {{edge(0, 0), "none"}, 0.9},
      {{edge(0, 0), "sep_conv_5x5"}, 0.1},
      {{edge(0, 1), "skip_connect"}, 0.3},
      // node 1: input 0 is the strongest despite its none
      {{edge(1, 0), "none"}, 0.5},
      {{edge(1, 0), "dil_conv_5x5"}, 0.45},
      {{edge(1, 1), "max_pool_3x3"}, 0.2},
      {{edge(1, 2), "avg_pool_3x3"}, 0.3},
      // node 2: a large none does not make an edge strong
      {{edge(2, 0), "none"}, 0.95},
      {{edge(2, 0), "max_pool_3x3"}, 0.05},
      {{edge(2, 1), "sep_conv_3x3"}, 0.4},
      {{edge(2, 1), "dil_conv_3x3"}, 0.3},
      {{edge(2, 2), "skip_connect"}, 0.6},
      {{edge(2, 3), "avg_pool_3x3"}, 0.2},
      // node 3
      {{edge(3, 4), "sep_conv_3x3"}, 0.7},
      {{edge(3, 3), "sep_conv_3x3"}, 0.1},
      {{edge(3, 0), "dil_conv_3x3"}, 0.65},
  });
  SamplerOptions options;
  options.name = "darts";
  auto sampler = make_sampler(options, CellSpace{4, 8});
  const std::vector<GenotypeNode> expected = {
      {{"skip_connect", 1}, {"sep_conv_5x5", 0}},
      {{"dil_conv_5x5", 0}, {"avg_pool_3x3", 2}},
      {{"skip_connect", 2}, {"sep_conv_3x3", 1}},
      {{"sep_conv_3x3", 4}, {"dil_conv_3x3", 0}},
  };
  EXPECT_EQ(sampler->derive(probs), expected);
}

TEST(DeriveGenotype, ConcatFollowsTheMultiplier) {
  auto sampler = egs(Granularity::kNode, 4);
  at::Tensor probs = sampler->probabilities(at::zeros({14, 8}));
  Genotype four = derive_genotype(*sampler, probs, probs, 4);
  EXPECT_EQ(four.normal_concat, (std::vector<int>{2, 3, 4, 5}));
  EXPECT_EQ(four.reduce_concat, (std::vector<int>{2, 3, 4, 5}));
  EXPECT_EQ(four.normal.size(), 4u);
  EXPECT_EQ(four.reduce.size(), 4u);
  Genotype two = derive_genotype(*sampler, probs, probs, 2);
  EXPECT_EQ(two.normal_concat, (std::vector<int>{4, 5}));
}

}  // namespace
}  // namespace datanas
