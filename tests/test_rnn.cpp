// The recurrent cell space: op functions, the discrete and search cells (shapes, the DARTS
// formulas, agreement between the two), the samplers and derivation on the recurrent space,
// darts-rnn genotypes, and a tiny language model that learns a predictable corpus.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "data/corpus.h"
#include "nets/rnn_cell.h"
#include "nets/rnn_model.h"
#include "nets/rnn_search_cell.h"
#include "sample/sampler.h"
#include "space/rnn_ops.h"
#include "tasks/lm_common.h"
#include "util/error.h"

namespace datanas {
namespace {

Genotype rnn_genotype(std::vector<GenotypeNode> nodes, std::vector<int> concat) {
  Genotype g;
  g.space = "darts-rnn";
  g.recurrent = std::move(nodes);
  g.concat = std::move(concat);
  return g;
}

TEST(RnnOps, EachOpIsItsFunction) {
  EXPECT_EQ(rnn_op_names(),
            (std::vector<std::string>{"none", "tanh", "relu", "sigmoid", "identity"}));
  at::Tensor h = at::linspace(-3, 3, 13);
  EXPECT_TRUE(at::allclose(rnn_activation(rnn_op_index("tanh"), h), at::tanh(h)));
  EXPECT_TRUE(at::allclose(rnn_activation(rnn_op_index("relu"), h), at::clamp_min(h, 0)));
  EXPECT_TRUE(at::allclose(rnn_activation(rnn_op_index("sigmoid"), h), 1 / (1 + at::exp(-h))));
  EXPECT_TRUE(at::equal(rnn_activation(rnn_op_index("identity"), h), h));
  EXPECT_THROW(rnn_activation(0, h), Error);  // none has no activation
  // The gated update interpolates between the previous state (c = 0) and the activation (c = 1).
  at::Tensor s = at::full({3}, 2.0), a = at::full({3}, -1.0);
  EXPECT_TRUE(at::allclose(highway_update(s, at::zeros({3}), a), s));
  EXPECT_TRUE(at::allclose(highway_update(s, at::ones({3}), a), a));
  EXPECT_TRUE(at::allclose(highway_update(s, at::full({3}, 0.25), a), at::full({3}, 1.25)));
}

TEST(RnnCellSpace, IndexingAndGroups) {
  const CellSpace space = rnn_cell_space(8);
  EXPECT_EQ(space.ops, 5);
  EXPECT_EQ(space.edges(), 36);  // 1 + 2 + ... + 8
  EXPECT_EQ(space.node_first_edge(3), 6);
  EXPECT_EQ(space.node_inputs(3), 4);
  EXPECT_EQ(cnn_cell_space(4).edges(), 14);
  SamplerOptions o;
  o.M = 3;
  auto egs = make_sampler(o, space);
  ASSERT_EQ(egs->groups().size(), 8u);
  for (int j = 0; j < 8; ++j) EXPECT_EQ(egs->groups()[j].size, (j + 1) * 5);
  at::Generator g = at::detail::createCPUGenerator(3);
  at::Tensor alpha = at::normal(0, 1, {36, 5}, g);
  for (int trial = 0; trial < 20; ++trial) {
    CellWeights w = egs->sample(alpha, g);
    for (const auto& group : egs->groups()) {
      int ones = 0;
      for (int64_t i = group.start; i < group.start + group.size; ++i) ones += w.selected[i];
      EXPECT_GE(ones, 1);
      EXPECT_LE(ones, 3);
    }
  }
}

TEST(RnnDerive, DartsKeepsTheBestPairEgsTheMostProbableSupport) {
  const CellSpace space = rnn_cell_space(3);
  at::Tensor probs = at::full({space.edges(), space.ops}, 0.01);
  probs[0][rnn_op_index("none")] = 0.9;  // none is never kept
  probs[0][rnn_op_index("relu")] = 0.05;
  probs[space.node_edge(1, 1)][rnn_op_index("tanh")] = 0.6;
  probs[space.node_edge(2, 0)][rnn_op_index("sigmoid")] = 0.45;
  probs[space.node_edge(2, 2)][rnn_op_index("identity")] = 0.45;
  SamplerOptions o;
  o.name = "darts";
  auto darts = make_sampler(o, space);
  const auto cell = darts->derive(probs);
  ASSERT_EQ(cell.size(), 3u);
  EXPECT_EQ(cell[0], (GenotypeNode{{"relu", 0}}));
  EXPECT_EQ(cell[1], (GenotypeNode{{"tanh", 1}}));
  ASSERT_EQ(cell[2].size(), 1u);
  o.name = "egs";
  o.M = 4;
  auto egs = make_sampler(o, space);
  const auto support = egs->derive(probs);
  EXPECT_EQ(support[1].front(), (OpInput{"tanh", 1}));
  // Node 2 has two equally strong pairs: the most probable code keeps both.
  ASSERT_EQ(support[2].size(), 2u);
  Genotype g = rnn_genotype(support, {1, 2, 3});
  EXPECT_NO_THROW(validate_genotype(g));
}

TEST(RnnGenotype, BuiltinRoundTripAndErrors) {
  const Genotype darts = load_genotype("DARTS_RNN");
  ASSERT_TRUE(darts.is_recurrent());
  ASSERT_EQ(darts.recurrent.size(), 8u);
  EXPECT_EQ(darts.recurrent[0], (GenotypeNode{{"sigmoid", 0}}));
  EXPECT_EQ(darts.recurrent[5], (GenotypeNode{{"sigmoid", 5}}));
  EXPECT_EQ(darts.concat, (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8}));
  const std::string text = genotype_to_json(darts);
  EXPECT_NE(text.find("\"recurrent\": [[[\"sigmoid\", 0]]"), std::string::npos) << text;
  EXPECT_EQ(genotype_from_json(text), darts);
  const Genotype multi =
      rnn_genotype({{{"tanh", 0}, {"relu", 0}}, {{"identity", 1}, {"sigmoid", 0}}}, {1, 2});
  EXPECT_EQ(genotype_from_json(genotype_to_json(multi)), multi);
  EXPECT_NE(genotype_to_dot(darts, "recurrent").find("\"5\" -> \"6\" [label=\"sigmoid\""),
            std::string::npos);
  auto rejected = [](const Genotype& g, const std::string& needle) {
    try {
      validate_genotype(g, "cell.json");
      ADD_FAILURE() << "accepted, expected: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  rejected(rnn_genotype({{{"tanh", 1}}}, {1}),
           "recurrent node 0 pair 0: input 1 out of range (expected 0..0)");
  rejected(rnn_genotype({{{"sep_conv_3x3", 0}}}, {1}),
           "unknown op \"sep_conv_3x3\" (expected one of tanh, relu, sigmoid, identity)");
  rejected(rnn_genotype({{{"tanh", 0}}}, {2}),
           "concat: 2 out of range (expected node indices in 1..1)");
  rejected(rnn_genotype({{{"none", 0}}}, {1}), "op \"none\" is not allowed");
}

TEST(RnnCell, ShapesAndTheDartsFormula) {
  torch::manual_seed(0);
  const Genotype g = rnn_genotype({{{"tanh", 0}}}, {1});
  RnnCell cell(g, RnnCellOptions{4, 6, 0.0, 0.0});
  cell->eval();
  at::Tensor x = at::randn({5, 3, 4}), h0 = at::randn({3, 6});
  at::Tensor out = cell->forward(x, h0);
  EXPECT_EQ(out.sizes(), (at::IntArrayRef{5, 3, 6}));
  // One step by hand: s0 = h + sig(c0) (tanh(h0') - h), s1 = s0 + sig(c1) (tanh(h1) - s0).
  auto params = cell->named_parameters();
  at::Tensor w0 = params["W0"], w1 = params["W1"];
  auto ch0 = at::cat({x[0], h0}, -1).mm(w0).chunk(2, -1);
  at::Tensor s0 = h0 + ch0[0].sigmoid() * (ch0[1].tanh() - h0);
  auto ch1 = s0.mm(w1).chunk(2, -1);
  at::Tensor s1 = s0 + ch1[0].sigmoid() * (ch1[1].tanh() - s0);
  EXPECT_TRUE(at::allclose(out[0], s1, 1e-5, 1e-6));
  // The DARTS cell: 8 nodes, output (T, B, H), a finite gradient for every weight.
  RnnCell darts(load_genotype("DARTS_RNN"), RnnCellOptions{6, 6, 0.3, 0.2});
  darts->train();
  at::Tensor y = darts->forward(at::randn({4, 2, 6}), at::zeros({2, 6}));
  EXPECT_EQ(y.sizes(), (at::IntArrayRef{4, 2, 6}));
  y.pow(2).sum().backward();
  EXPECT_EQ(darts->parameters().size(), 9u);
  for (const auto& p : darts->parameters()) EXPECT_TRUE(p.grad().abs().sum().item<float>() > 0);
}

// The supernet with the fixed weights of a genotype computes the discrete cell, also for nodes
// with several pairs (mean of their updates = normalised EGS weights).
TEST(RnnSearchCell, FixedWeightsReproduceTheDiscreteCell) {
  torch::manual_seed(1);
  const CellSpace space = rnn_cell_space(3);
  const Genotype g = rnn_genotype(
      {{{"relu", 0}}, {{"tanh", 1}, {"identity", 0}}, {{"sigmoid", 2}, {"tanh", 2}}}, {1, 2, 3});
  RnnSearchCell search(space, RnnCellOptions{5, 5, 0.0, 0.0});
  RnnCell discrete(g, RnnCellOptions{5, 5, 0.0, 0.0});
  {
    at::NoGradGuard no_grad;
    auto from = search->named_parameters();
    for (auto& item : discrete->named_parameters()) item.value().copy_(from[item.key()]);
  }
  search->eval();
  discrete->eval();
  SamplerOptions o;
  auto sampler = make_sampler(o, space);
  CellWeights w = sampler->fixed(g.recurrent);
  at::Tensor x = at::randn({6, 2, 5}), h = at::randn({2, 5}) * 0.1;
  for (ExecMode mode : {ExecMode::kSelected, ExecMode::kDense, ExecMode::kArchitecture}) {
    at::Tensor a = search->forward(x, h, w, mode), b = discrete->forward(x, h);
    EXPECT_EQ(a.sizes(), b.sizes());
    EXPECT_TRUE(at::allclose(a, b, 1e-5, 1e-6)) << (a - b).abs().max().item<float>();
  }
}

// The straight-through gradient reaches every alpha entry of a node in the architecture mode,
// and the fast mode gives the dense mode's alpha gradient.
TEST(RnnSearchCell, ArchitectureModeMatchesDenseGradient) {
  torch::manual_seed(2);
  const CellSpace space = rnn_cell_space(4);
  RnnSearchCell cell(space, RnnCellOptions{4, 4, 0.0, 0.0});
  cell->eval();
  SamplerOptions o;
  o.M = 2;
  auto sampler = make_sampler(o, space);
  at::Tensor x = at::randn({3, 2, 4}), h = at::zeros({2, 4});
  std::vector<at::Tensor> grads;
  for (ExecMode mode : {ExecMode::kDense, ExecMode::kArchitecture}) {
    at::Tensor alpha = at::zeros({space.edges(), space.ops}).set_requires_grad(true);
    at::Generator g = at::detail::createCPUGenerator(7);
    CellWeights w = sampler->sample(alpha, g);
    cell->forward(x, h, w, mode).pow(2).sum().backward();
    grads.push_back(alpha.grad());
  }
  EXPECT_TRUE(at::allclose(grads[0], grads[1], 1e-4, 1e-6));
  EXPECT_GT(grads[1].abs().gt(0).sum().item<int64_t>(), space.edges());
}

// A tiny corpus where every word determines the next: a model of a few thousand parameters
// trained for 300 steps predicts it far better than uniform (perplexity = vocabulary size).
TEST(RnnModel, TinyModelLearnsAPredictableCorpus) {
  torch::manual_seed(3);
  const int64_t V = 30;
  std::vector<int64_t> ids;
  for (int i = 0; i < 6000; ++i) ids.push_back((i * 7) % V);
  at::Tensor stream = batchify(at::tensor(ids, at::kLong), 8);
  for (const std::string core : {"darts", "lstm"}) {
    SCOPED_TRACE(core);
    RnnModelOptions o;
    o.vocab = V;
    o.emsize = o.nhid = 24;
    o.dropout = o.dropouth = o.dropoutx = o.dropouti = 0.0;
    RnnModel model(core, o, load_genotype("DARTS_RNN"), rnn_cell_space(8));
    const double before = evaluate_perplexity(model, stream, 10, nullptr, at::kCPU);
    EXPECT_GT(before, V * 0.8);
    torch::optim::SGD sgd(model->parameters(),
                          torch::optim::SGDOptions(core == "lstm" ? 5.0 : 20.0));
    model->train();
    LmHidden hidden = model->initial_hidden(8, at::kCPU);
    const auto windows = bptt_windows(stream.size(0), 10, false, 0);
    for (int step = 0; step < 300; ++step) {
      const BpttWindow& w = windows[step % windows.size()];
      if (step % windows.size() == 0) hidden = model->initial_hidden(8, at::kCPU);
      LmBatch batch = lm_batch(stream, w.start, w.length);
      hidden = hidden.detached();
      at::Tensor loss = at::cross_entropy_loss(model->forward(batch.input, hidden), batch.target);
      sgd.zero_grad();
      loss.backward();
      torch::nn::utils::clip_grad_norm_(model->parameters(), 0.25);
      sgd.step();
    }
    const double after = evaluate_perplexity(model, stream, 10, nullptr, at::kCPU);
    EXPECT_LT(after, V / 5.0) << "before " << before;
  }
}

TEST(RnnModel, TiedEmbeddingAndParameterCount) {
  RnnModelOptions o;
  o.vocab = 100;
  o.emsize = o.nhid = 10;
  RnnModel model("darts", o, load_genotype("DARTS_RNN"), rnn_cell_space(8));
  // embedding 100x10 (shared with the decoder) + decoder bias 100 + W0 20x20 + 8 x (10x20)
  EXPECT_EQ(count_lm_parameters(*model), 1000 + 100 + 400 + 8 * 200);
  o.nhid = 12;
  EXPECT_THROW(RnnModel("darts", o, load_genotype("DARTS_RNN"), rnn_cell_space(8)), Error);
  RnnModel lstm("lstm", o, Genotype{}, rnn_cell_space(8));  // projection 12 -> 10
  EXPECT_EQ(count_lm_parameters(*lstm), 1000 + 100 + 4 * 12 * (10 + 12) + 8 * 12 + 12 * 10 + 10);
}

TEST(Bptt, WindowsCoverTheStreamContiguously) {
  for (bool variable : {false, true}) {
    const auto windows = bptt_windows(1001, 35, variable, 5);
    int64_t next = 0;
    for (const BpttWindow& w : windows) {
      EXPECT_EQ(w.start, next);
      EXPECT_GE(w.length, 1);
      EXPECT_LE(w.length, 55);
      next += w.length;
    }
    EXPECT_EQ(next, 1000);
    if (!variable) {
      EXPECT_EQ(windows.size(), 29u);  // ceil(1000 / 35)
    }
  }
  EXPECT_NE(bptt_windows(1001, 35, true, 5).size(), bptt_windows(1001, 35, false, 5).size());
}

}  // namespace
}  // namespace datanas
