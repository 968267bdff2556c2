// Deferred terms (nets/deferred_terms.h): the ops an architecture step weighs by 0 are measured in
// the backward pass instead of being run in the forward pass. Measured sep/dil convs and pools
// equal the inner product with their output; the autograd node routes those measures to the
// weights; an edge gives the dense edge's output and weight gradient while running no
// unselected op before the backward pass; and a node's edges combined in one weighted sum give
// what their outputs summed one by one give.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "kernel_checks.h"
#include "nets/deferred_terms.h"
#include "nets/search_cell.h"
#include "space/op_blocks.h"
#include "space/ops.h"
#include "util/error.h"

namespace datanas {
namespace {
using namespace kernel_checks;

// <g, op(x)> by measuring (sep or dil conv, native, autograd off).
double measure(torch::nn::AnyModule& op, const at::Tensor& x, const at::Tensor& g) {
  if (auto* sep = op.ptr()->as<SepConvImpl>()) {
    EXPECT_TRUE(sep->can_fuse(x));
    return sep->measure(x, g);
  }
  auto* dil = op.ptr()->as<DilConvImpl>();
  EXPECT_TRUE(dil && dil->can_fuse(x));
  return dil->measure(x, g);
}

// Every sep/dil conv, both strides, affine or not (so the batch norm's offset counts), in double:
// the measure against LibTorch's module output, and the running statistics it leaves.
TEST(DeferredTerms, MeasuredConvsEqualTheInnerProductWithTheirOutput) {
  for (const std::string name : {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"}) {
    for (int64_t stride : {1, 2}) {
      for (bool affine : {false, true}) {
        for (const Shape& s : kShapes) {
          torch::manual_seed(21);
          torch::nn::AnyModule reference =
              make_cnn_op(name, s.c, stride, affine, false, KernelBackend::kTorch);
          torch::manual_seed(21);
          torch::nn::AnyModule fused =
              make_cnn_op(name, s.c, stride, affine, false, KernelBackend::kNative);
          reference.ptr()->to(torch::kDouble);
          fused.ptr()->to(torch::kDouble);
          if (affine) {
            at::NoGradGuard no_grad;
            auto pf = fused.ptr()->named_parameters();
            for (const auto& item : reference.ptr()->named_parameters()) {
              if (item.key().find("bn") == std::string::npos) continue;
              item.value().normal_();
              pf[item.key()].copy_(item.value());
            }
          }
          const at::Tensor x = torch::randn({s.n, s.c, s.h, s.w}, torch::kDouble)
                                   .contiguous(at::MemoryFormat::ChannelsLast) +
                               0.5;
          at::NoGradGuard no_grad;
          const at::Tensor y = reference.forward<at::Tensor>(x);
          const at::Tensor g = torch::randn(y.sizes(), torch::kDouble);  // NCHW, unlike x
          const double expected = (g * y).sum().item<double>();
          const double got = measure(fused, x, g);
          const std::string what = name + " s" + std::to_string(stride) +
                                   (affine ? " affine " : " ") + std::to_string(s.n) + "x" +
                                   std::to_string(s.c) + "x" + std::to_string(s.h) + "x" +
                                   std::to_string(s.w);
          EXPECT_NEAR(got, expected, 1e-9 * (g.abs() * y.abs()).sum().item<double>()) << what;
          expect_buffers_close(*fused.ptr(), *reference.ptr(), what);
        }
      }
    }
  }
}

// Max and average pools with their batch norm (the supernet's), both strides, in double and in
// float: the measure against LibTorch's pool + batch norm, and the running statistics it leaves.
TEST(DeferredTerms, MeasuredPoolsEqualTheInnerProductWithTheirOutput) {
  for (const std::string name : {"max_pool_3x3", "avg_pool_3x3"}) {
    for (int64_t stride : {1, 2}) {
      for (auto dtype : {torch::kDouble, torch::kFloat}) {
        for (const Shape& s : kShapes) {
          torch::nn::AnyModule reference =
              make_cnn_op(name, s.c, stride, false, true, KernelBackend::kTorch);
          torch::nn::AnyModule fused =
              make_cnn_op(name, s.c, stride, false, true, KernelBackend::kNative);
          reference.ptr()->to(dtype);
          fused.ptr()->to(dtype);
          torch::manual_seed(23);
          const at::Tensor x =
              torch::randn({s.n, s.c, s.h, s.w}, dtype).contiguous(at::MemoryFormat::ChannelsLast);
          at::NoGradGuard no_grad;
          const at::Tensor y = reference.forward<at::Tensor>(x).to(torch::kDouble);
          const at::Tensor g = torch::randn(y.sizes(), dtype);  // NCHW, unlike x
          const double expected = (g.to(torch::kDouble) * y).sum().item<double>();
          auto* pool = fused.ptr()->as<PoolImpl>();
          ASSERT_TRUE(pool && pool->can_measure(x));
          const double got = pool->measure(x, g);
          const std::string what = name + " s" + std::to_string(stride) +
                                   (dtype == torch::kFloat ? " float " : " double ") +
                                   std::to_string(s.n) + "x" + std::to_string(s.c) + "x" +
                                   std::to_string(s.h) + "x" + std::to_string(s.w);
          const double tolerance = dtype == torch::kFloat ? 1e-5 : 1e-10;
          EXPECT_NEAR(got, expected, tolerance * (g.abs() * y.abs()).sum().item<double>()) << what;
          expect_buffers_close(*fused.ptr(), *reference.ptr(), what);
        }
      }
    }
  }
}

// A pool is measured only without autograd and with a gradient of its output's shape.
TEST(DeferredTerms, PoolMeasureRefusesWhatItCannotMeasure) {
  Pool pool(true, 4, 2, true, KernelBackend::kNative);
  const at::Tensor x = torch::randn({2, 4, 6, 6}).contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_FALSE(pool->can_measure(x));  // autograd is on here
  at::NoGradGuard no_grad;
  EXPECT_TRUE(pool->can_measure(x));
  EXPECT_FALSE(pool->can_measure(x.contiguous()));
  EXPECT_THROW(pool->measure(x, torch::randn({2, 4, 6, 6})), Error);  // stride 2 halves H, W
  EXPECT_THROW(pool->measure(x, torch::randn({2, 4, 3, 3}, torch::kDouble)), Error);
  EXPECT_NO_THROW(pool->measure(x, torch::randn({2, 4, 3, 3})));
}

// y passes through with its gradient; each term's measure of that gradient (in y's layout)
// lands on its weight entry, every other entry gets 0.
// In double: a float dot of x with the gradient, summed in another order than the reference's,
// missed the tolerance by rounding alone in one CI run.
TEST(DeferredTerms, MeasuresReachTheWeightsAndTheGradientPassesThrough) {
  const at::Tensor x =
      torch::randn({2, 3, 4, 5}, torch::kDouble).contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor leaf = x.clone().requires_grad_(true);
  const at::Tensor w = torch::rand({6}).requires_grad_(true);
  auto terms = c10::make_intrusive<DeferredTerms>();
  terms->index = {1, 4};
  bool layout_ok = true;
  terms->measure = [&](size_t j, const at::Tensor& g) {
    layout_ok = layout_ok && g.is_contiguous(at::MemoryFormat::ChannelsLast);
    return static_cast<double>(j + 1) * (g * x).sum().item<double>();
  };
  const at::Tensor y = attach_deferred_terms(leaf * 2, w, terms);
  EXPECT_TRUE(at::equal(y, x * 2));
  // NCHW: the node makes it channels-last.
  const at::Tensor up = torch::randn({2, 3, 4, 5}, torch::kDouble);
  (y * up).sum().backward();
  EXPECT_TRUE(layout_ok);
  EXPECT_LE(relative_error(leaf.grad(), up * 2), 1e-7);
  const double dot = (up * x).sum().item<double>();
  const at::Tensor expected = torch::tensor({0.0, dot, 0.0, 0.0, 2 * dot, 0.0}).to(torch::kFloat);
  EXPECT_LE(relative_error(w.grad(), expected), 1e-6);

  terms->index = {6};
  EXPECT_THROW(attach_deferred_terms(x, w, terms), Error);
  EXPECT_THROW(attach_deferred_terms(x, w, c10::make_intrusive<DeferredTerms>()), Error);
}

// A straight-through weight row as an architecture step has it: 1 on `selected`, 0 elsewhere.
at::Tensor straight_through_row(const at::Tensor& alpha, const std::vector<uint8_t>& selected) {
  const at::Tensor soft = at::softmax(alpha, 0);
  at::Tensor hard = at::zeros_like(soft);
  for (size_t k = 0; k < selected.size(); ++k) hard[k] = static_cast<double>(selected[k]);
  return hard - soft.detach() + soft;
}

// One edge per kernel backend and layout: kArchitecture gives kDense's output and alpha
// gradient, and an unselected op's batch norm sees its batch only in the backward pass.
TEST(DeferredTerms, ArchitectureEdgeMatchesDenseAndRunsUnselectedOpsOnlyInBackward) {
  const std::vector<uint8_t> selected = {0, 0, 1, 0, 0, 1, 0, 0};  // max pool, sep_conv_5x5
  for (KernelBackend kernels : {KernelBackend::kNative, KernelBackend::kTorch}) {
    for (bool nhwc : {true, false}) {
      torch::manual_seed(31);
      MixedOp edge(6, 1, kernels);
      edge->train();
      const at::Tensor x = laid_out(torch::randn({3, 6, 9, 9}), nhwc);
      const at::Tensor up = torch::randn({3, 6, 9, 9});
      const at::Tensor alpha = torch::randn({8}).requires_grad_(true);
      const std::string what = std::string(kernels == KernelBackend::kNative ? "native" : "torch") +
                               (nhwc ? " nhwc" : " nchw");
      std::vector<at::Tensor> outputs, grads;
      for (ExecMode mode : {ExecMode::kDense, ExecMode::kArchitecture}) {
        const at::Tensor row = straight_through_row(alpha, selected);
        const at::Tensor y = edge->forward(x, row, selected.data(), mode);
        auto buffers = edge->named_buffers();
        const at::Tensor running = buffers["dil_conv_3x3.bn.running_mean"].clone();
        outputs.push_back(y.detach());
        grads.push_back(torch::autograd::grad({(y * up).sum()}, {alpha})[0]);
        const bool ran_in_forward = !at::equal(running, at::zeros_like(running));
        const bool ran_in_backward = !at::equal(buffers["dil_conv_3x3.bn.running_mean"], running);
        EXPECT_EQ(ran_in_forward, mode == ExecMode::kDense) << what;
        EXPECT_EQ(ran_in_backward, mode == ExecMode::kArchitecture) << what;
        for (auto& b : buffers) b.value().detach().zero_();  // next mode starts from the same state
      }
      EXPECT_LE(relative_error(outputs[1], outputs[0]), 1e-6) << what;
      EXPECT_LE(relative_error(grads[1], grads[0]), 1e-5) << what;
      EXPECT_GT((grads[1] != 0).sum().item<int64_t>(), 5) << what;
    }
  }
}

// A node's three edges in an architecture step (selected ops, deferred ones, an edge with only
// deferred ones): combine_edges (one native weighted sum over the node's rows end to end, the
// inputs fanned out) gives the output and weight gradients of the edge outputs added one by one.
TEST(DeferredTerms, CombinedEdgesMatchEdgeOutputsAddedOneByOne) {
  const std::vector<std::vector<uint8_t>> selected = {
      {0, 1, 0, 0, 1, 0, 0, 0}, {0, 0, 0, 1, 0, 0, 1, 1}, {0, 0, 0, 0, 0, 0, 0, 0}};
  torch::manual_seed(32);
  std::vector<MixedOp> edges;
  std::vector<at::Tensor> inputs;
  for (int e = 0; e < 3; ++e) {
    edges.emplace_back(5, 1, KernelBackend::kNative);
    edges.back()->train();
    inputs.push_back(laid_out(torch::randn({3, 5, 8, 8}), true).requires_grad_(true));
  }
  const at::Tensor alpha = torch::randn({3, 8}).requires_grad_(true);
  const at::Tensor up = torch::randn({3, 5, 8, 8});
  std::vector<at::Tensor> outputs, alpha_grads, input_grads;
  for (bool combined : {false, true}) {
    std::vector<at::Tensor> rows;
    for (int e = 0; e < 3; ++e) rows.push_back(straight_through_row(alpha[e], selected[e]));
    const at::Tensor table = at::stack(rows);
    at::Tensor y;
    if (combined) {
      std::vector<StateReaders> readers;
      std::vector<EdgeTerms> terms;
      for (int e = 0; e < 3; ++e) {
        readers.emplace_back(inputs[e], 2, KernelBackend::kNative);  // one alias left unused
        terms.push_back(
            edges[e]->terms(readers.back(), table[e], selected[e].data(), ExecMode::kArchitecture));
      }
      y = combine_edges(terms, table.reshape({-1}), KernelBackend::kNative);
    } else {
      for (int e = 0; e < 3; ++e) {
        const at::Tensor out =
            edges[e]->forward(inputs[e], table[e], selected[e].data(), ExecMode::kArchitecture);
        y = y.defined() ? y + out : out;
      }
    }
    outputs.push_back(y.detach());
    // Input 2 reaches y only through deferred terms, which weigh 0: no gradient.
    const auto grads = torch::autograd::grad({(y * up).sum()}, {alpha, inputs[0], inputs[1]});
    alpha_grads.push_back(grads[0]);
    input_grads.push_back(at::cat({grads[1].reshape(-1), grads[2].reshape(-1)}));
    EXPECT_GT((grads[0][2] != 0).sum().item<int64_t>(), 4);  // edge 2 measured all the same
  }
  EXPECT_LE(relative_error(outputs[1], outputs[0]), 1e-6);
  EXPECT_LE(relative_error(alpha_grads[1], alpha_grads[0]), 1e-5);
  EXPECT_LE(relative_error(input_grads[1], input_grads[0]), 1e-6);
  EXPECT_GT((alpha_grads[1] != 0).sum().item<int64_t>(), 16);
}

}  // namespace
}  // namespace datanas
