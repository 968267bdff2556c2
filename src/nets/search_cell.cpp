#include "nets/search_cell.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "kernels/weighted_sum.h"
#include "nets/deferred_terms.h"
#include "space/op_blocks.h"
#include "space/ops.h"

namespace datanas {

MixedOpImpl::MixedOpImpl(int64_t channels, int64_t stride, KernelBackend kernels)
    : kernels_(kernels) {
  const auto& names = cnn_op_names();
  for (size_t k = 0; k < names.size(); ++k) {
    ops_.push_back(
        make_cnn_op(names[k], channels, stride, /*affine=*/false, /*pool_bn=*/true, kernels));
    register_module(names[k], ops_.back().ptr());
  }
}

namespace {

// <g, op(x)>, autograd off; fused sep/dil blocks never store op(x).
double measure_op(torch::nn::AnyModule& op, const at::Tensor& x, const at::Tensor& g,
                  KernelBackend kernels) {
  if (auto* sep = op.ptr()->as<SepConvImpl>(); sep && sep->can_fuse(x)) return sep->measure(x, g);
  if (auto* dil = op.ptr()->as<DilConvImpl>(); dil && dil->can_fuse(x)) return dil->measure(x, g);
  if (auto* pool = op.ptr()->as<PoolImpl>(); pool && pool->can_measure(x))
    return pool->measure(x, g);
  const at::Tensor y = op.forward(x);
  if (use_native_kernels(kernels, x) && can_weight_natively({y}) &&
      g.scalar_type() == y.scalar_type())
    return native_dots({y}, g)[0];
  return at::sum(g * y).item<double>();  // what autograd computes for w * y
}

}  // namespace

at::Tensor MixedOpImpl::forward(const at::Tensor& x, const at::Tensor& row, const uint8_t* selected,
                                ExecMode mode) {
  std::vector<int64_t> index;  // the ops that contribute, and their outputs
  std::vector<at::Tensor> values;
  // An architecture step defers the unselected ops whose weight is exactly 0 when the row needs
  // a gradient: only that gradient needs their outputs.
  const bool defers = mode == ExecMode::kArchitecture && row.requires_grad();
  const at::Tensor row_values =
      defers ? row.detach().to(at::kCPU, at::kDouble).contiguous() : at::Tensor();
  std::vector<int64_t> deferred;
  for (size_t k = 0; k < ops_.size(); ++k) {
    if (mode == ExecMode::kDense) {
      index.push_back(static_cast<int64_t>(k));
      values.push_back(ops_[k].forward(x));
      continue;
    }
    // `none` outputs zeros: it adds nothing to the output nor to any gradient.
    if (static_cast<int>(k) == kNoneOp) continue;
    if (selected[k]) {
      index.push_back(static_cast<int64_t>(k));
      values.push_back(ops_[k].forward(x));
    } else if (mode == ExecMode::kArchitecture) {
      if (defers && row_values.data_ptr<double>()[k] == 0.0) {
        deferred.push_back(static_cast<int64_t>(k));
        continue;
      }
      at::NoGradGuard no_grad;
      index.push_back(static_cast<int64_t>(k));
      values.push_back(ops_[k].forward(x));
    }
  }
  if (deferred.empty()) return weighted_sum(values, row, index);
  at::Tensor sum = values.empty() ? zero_output(x) : weighted_sum(values, row, index);
  auto terms = c10::make_intrusive<DeferredTerms>();
  terms->index = deferred;
  // The terms hold this module (not a copy) and x until the backward pass.
  auto self = std::static_pointer_cast<MixedOpImpl>(shared_from_this());
  terms->measure = [self, x, deferred](size_t j, const at::Tensor& g) {
    return measure_op(self->ops_[deferred[j]], x, g, self->kernels_);
  };
  return attach_deferred_terms(sum, row, std::move(terms));
}

at::Tensor MixedOpImpl::weighted_sum(const std::vector<at::Tensor>& values, const at::Tensor& row,
                                     const std::vector<int64_t>& index) {
  if (values.empty()) return {};
  // A lone weight of exactly 1 that carries no gradient (a single selection in the weight step)
  // changes nothing: skip the multiplication.
  if (values.size() == 1 && !row.requires_grad() && row[index[0]].item<float>() == 1.0f)
    return values[0];
  if (use_native_kernels(kernels_, values[0]) && can_weight_natively(values) &&
      row.scalar_type() == values[0].scalar_type())
    return native_weighted_sum(values, row, index);
  at::Tensor sum;
  for (size_t j = 0; j < values.size(); ++j) {
    at::Tensor term = row[index[j]] * values[j];
    sum = sum.defined() ? sum + term : term;
  }
  return sum;
}

at::Tensor MixedOpImpl::zero_output(const at::Tensor& x) { return ops_[kNoneOp].forward(x); }

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

at::Tensor SearchCellImpl::forward(const at::Tensor& s0, const at::Tensor& s1,
                                   const CellWeights& weights, ExecMode mode) {
  const int ops = options_.space.ops;
  std::vector<at::Tensor> states = {preprocess0_.forward(s0), preprocess1_.forward(s1)};
  for (int node = 0; node < options_.space.nodes; ++node) {
    at::Tensor node_sum;
    for (int input = 0; input < CellSpace::inputs(node); ++input) {
      const int e = CellSpace::edge(node, input);
      at::Tensor out = edges_[e]->forward(states[input], weights.weights[e],
                                          weights.selected.data() + e * ops, mode);
      if (out.defined()) node_sum = node_sum.defined() ? node_sum + out : out;
    }
    // Nothing selected on any edge of the node: its value is zero.
    if (!node_sum.defined()) node_sum = edges_[CellSpace::edge(node, 0)]->zero_output(states[0]);
    states.push_back(node_sum);
  }
  std::vector<at::Tensor> concat(states.end() - options_.multiplier, states.end());
  return at::cat(concat, 1);
}

}  // namespace datanas
