#include "nets/search_cell.h"

#include <ATen/ATen.h>

#include "kernels/channel_parts.h"

namespace datanas {

SearchCellImpl::SearchCellImpl(const SearchCellOptions& o) : options_(o) {
  if (o.reduction_prev) {
    preprocess0_ =
        torch::nn::AnyModule(FactorizedReduce(o.channels_prev_prev, o.channels, false, o.kernels));
  } else {
    preprocess0_ = torch::nn::AnyModule(
        ReLUConvBN(o.channels_prev_prev, o.channels, 1, 1, 0, false, o.kernels));
  }
  preprocess1_ =
      torch::nn::AnyModule(ReLUConvBN(o.channels_prev, o.channels, 1, 1, 0, false, o.kernels));
  register_module("preprocess0", preprocess0_.ptr());
  register_module("preprocess1", preprocess1_.ptr());
  for (int node = 0; node < o.space.nodes; ++node) {
    for (int input = 0; input < CellSpace::inputs(node); ++input) {
      const int64_t stride = o.reduction && input < 2 ? 2 : 1;
      edges_.push_back(register_module("edge" + std::to_string(edges_.size()),
                                       MixedOp(o.channels, stride, o.kernels)));
    }
  }
}

at::Tensor SearchCellImpl::preprocess(int input, const at::Tensor& s) {
  return (input == 0 ? preprocess0_ : preprocess1_).forward(s);
}

at::Tensor SearchCellImpl::preprocess(int input, const std::vector<at::Tensor>& parts) {
  auto* reduce =
      dynamic_cast<FactorizedReduceImpl*>((input == 0 ? preprocess0_ : preprocess1_).ptr().get());
  if (reduce) return reduce->forward_parts(parts);
  return preprocess(input, kernels::joined_channels(parts));
}

ReLUConvBNImpl* SearchCellImpl::pointwise_preprocess(int input) {
  return dynamic_cast<ReLUConvBNImpl*>((input == 0 ? preprocess0_ : preprocess1_).ptr().get());
}

at::Tensor SearchCellImpl::forward(const at::Tensor& s0, const at::Tensor& s1,
                                   const CellWeights& weights, ExecMode mode) {
  return at::cat(output_parts(preprocess(0, s0), preprocess(1, s1), weights, mode), 1);
}

std::vector<at::Tensor> SearchCellImpl::output_parts(const at::Tensor& p0, const at::Tensor& p1,
                                                     const CellWeights& weights, ExecMode mode) {
  const int ops = options_.space.ops;
  const int nodes = options_.space.nodes;
  std::vector<at::Tensor> states = {p0, p1};
  // How many ops read each state with autograd.
  std::vector<int64_t> reads(2 + nodes, 0);
  for (int node = 0; node < nodes; ++node) {
    for (int input = 0; input < CellSpace::inputs(node); ++input) {
      const int e = CellSpace::edge(node, input);
      reads[input] += edges_[e]->autograd_reads(weights.selected.data() + e * ops, mode);
    }
  }
  std::vector<StateReaders> readers;
  for (int i = 0; i < 2; ++i) readers.emplace_back(states[i], reads[i], options_.kernels);
  for (int node = 0; node < nodes; ++node) {
    const int first = CellSpace::edge(node, 0), inputs = CellSpace::inputs(node);
    std::vector<EdgeTerms> terms;
    for (int input = 0; input < inputs; ++input) {
      const int e = first + input;
      terms.push_back(edges_[e]->terms(readers[input], weights.weights[e],
                                       weights.selected.data() + e * ops, mode));
    }
    // The node's rows end to end: edges of a node are consecutive rows of the weight table.
    at::Tensor node_sum = combine_edges(
        terms, weights.weights.slice(0, first, first + inputs).reshape({-1}), options_.kernels);
    // Nothing selected on any edge of the node: its value is zero.
    if (!node_sum.defined()) node_sum = edges_[CellSpace::edge(node, 0)]->zero_output(states[0]);
    states.push_back(node_sum);
    readers.emplace_back(node_sum, reads[2 + node], options_.kernels);
  }
  return std::vector<at::Tensor>(states.end() - options_.multiplier, states.end());
}

}  // namespace datanas
