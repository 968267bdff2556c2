#include "nets/discrete_cell.h"

#include <ATen/ATen.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "space/op_blocks.h"
#include "space/ops.h"
#include "util/error.h"

namespace datanas {

namespace {

int64_t conv_macs(const torch::nn::Module& module, int64_t pixels) {
  if (auto* conv = dynamic_cast<const torch::nn::Conv2dImpl*>(&module)) {
    return conv->weight.numel() * pixels;  // c_out * (c_in / groups) * kh * kw * H * W
  }
  if (auto* linear = dynamic_cast<const torch::nn::LinearImpl*>(&module)) {
    return linear->weight.numel();  // in * out
  }
  return 0;
}

}  // namespace

void MacCounter::add_block(const torch::nn::Module& block, const at::Tensor& output) {
  const int64_t pixels = output.dim() == 4 ? output.size(2) * output.size(3) : 1;
  macs += conv_macs(block, pixels);
  for (const auto& child : block.modules(/*include_self=*/false)) {
    macs += conv_macs(*child, pixels);
  }
}

void MacCounter::add_conv(const torch::nn::Module& conv, const at::Tensor& output) {
  macs += conv_macs(conv, output.size(2) * output.size(3));
}

at::Tensor drop_path(const at::Tensor& x, double drop_prob) {
  if (drop_prob <= 0.0) return x;
  const double keep = 1.0 - drop_prob;
  std::vector<int64_t> mask_shape(x.dim(), 1);
  mask_shape[0] = x.size(0);
  at::Tensor mask = at::empty(mask_shape, x.options()).bernoulli_(keep);
  return x * (mask / keep);
}

DiscreteCellImpl::DiscreteCellImpl(const Genotype& genotype, const DiscreteCellOptions& o)
    : options_(o) {
  const std::vector<GenotypeNode>& nodes = o.reduction ? genotype.reduce : genotype.normal;
  concat_ = o.reduction ? genotype.reduce_concat : genotype.normal_concat;
  if (nodes.empty() || concat_.empty()) {
    throw Error(std::string("genotype: ") + (o.reduction ? "reduce" : "normal") +
                " cell has no nodes or no concat (expected a validated genotype)");
  }
  const bool affine = !o.supernet_ops;
  if (o.reduction_prev) {
    preprocess0_ =
        torch::nn::AnyModule(FactorizedReduce(o.channels_prev_prev, o.channels, affine, o.kernels));
  } else {
    preprocess0_ = torch::nn::AnyModule(
        ReLUConvBN(o.channels_prev_prev, o.channels, 1, 1, 0, affine, o.kernels));
  }
  preprocess1_ =
      torch::nn::AnyModule(ReLUConvBN(o.channels_prev, o.channels, 1, 1, 0, affine, o.kernels));
  register_module("preprocess0", preprocess0_.ptr());
  register_module("preprocess1", preprocess1_.ptr());

  const int node_count = static_cast<int>(nodes.size());
  for (int j = 0; j < node_count; ++j) {
    std::vector<Op> ops;
    for (size_t p = 0; p < nodes[j].size(); ++p) {
      const OpInput& pair = nodes[j][p];
      if (pair.input < 0 || pair.input > j + 1 || cnn_op_index(pair.op) <= 0) {
        throw Error("genotype: node " + std::to_string(j) + " pair " + std::to_string(p) + " (\"" +
                    pair.op + "\", " + std::to_string(pair.input) +
                    ") is invalid (expected a known op other than none and an input in 0.." +
                    std::to_string(j + 1) + ")");
      }
      const int64_t stride = o.reduction && pair.input < 2 ? 2 : 1;
      Op op;
      op.module = make_cnn_op(pair.op, o.channels, stride, affine, /*pool_bn=*/o.supernet_ops,
                              o.kernels);
      op.input = pair.input;
      op.identity = pair.op == "skip_connect" && stride == 1;
      register_module("node" + std::to_string(j) + "_op" + std::to_string(p), op.module.ptr());
      ops.push_back(std::move(op));
    }
    nodes_.push_back(std::move(ops));
  }
  for (int index : concat_) {
    if (index < 2 || index > node_count + 1) {
      throw Error("genotype: concat index " + std::to_string(index) +
                  " out of range (expected 2.." + std::to_string(node_count + 1) + ")");
    }
  }
}

int64_t DiscreteCellImpl::output_channels() const {
  return static_cast<int64_t>(concat_.size()) * options_.channels;
}

at::Tensor DiscreteCellImpl::forward(const at::Tensor& s0, const at::Tensor& s1, double drop_prob,
                                     MacCounter* counter) {
  std::vector<at::Tensor> states;
  states.reserve(2 + nodes_.size());
  states.push_back(preprocess0_.forward(s0));
  states.push_back(preprocess1_.forward(s1));
  if (counter) {
    counter->add_block(*preprocess0_.ptr(), states[0]);
    counter->add_block(*preprocess1_.ptr(), states[1]);
  }
  const bool drop = is_training() && drop_prob > 0.0;
  for (auto& ops : nodes_) {
    at::Tensor sum;
    for (auto& op : ops) {
      at::Tensor out = op.module.forward(states[op.input]);
      if (counter) counter->add_block(*op.module.ptr(), out);
      if (drop && !op.identity) out = drop_path(out, drop_prob);
      sum = sum.defined() ? sum + out : out;
    }
    states.push_back(sum);
  }
  std::vector<at::Tensor> selected;
  selected.reserve(concat_.size());
  for (int index : concat_) selected.push_back(states[index]);
  return at::cat(selected, 1);
}

}  // namespace datanas
