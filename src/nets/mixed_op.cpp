#include "nets/mixed_op.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "kernels/fan_out.h"
#include "kernels/weighted_sum.h"
#include "space/op_blocks.h"
#include "space/ops.h"

namespace datanas {
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

bool weighs_natively(const std::vector<at::Tensor>& values, const at::Tensor& w,
                     KernelBackend kernels) {
  return !values.empty() && use_native_kernels(kernels, values[0]) && can_weight_natively(values) &&
         w.scalar_type() == values[0].scalar_type();
}

// Term j of an edge as a tensor of its own.
at::Tensor term_of(const EdgeTerms& edge, size_t j) {
  // A mapped value (kernels/fused_batch_norm.h) is only ever summed natively: here alone.
  if (edge.maps[j].defined())
    return native_weighted_sum({edge.values[j]}, edge.row, {edge.index[j]}, {edge.maps[j]});
  return edge.row[edge.index[j]] * edge.values[j];
}

// sum_j row[index[j]] * values[j]; undefined without values.
at::Tensor edge_sum(const EdgeTerms& edge, KernelBackend kernels) {
  if (edge.values.empty()) return {};
  if (weighs_natively(edge.values, edge.row, kernels))
    return native_weighted_sum(edge.values, edge.row, edge.index, edge.maps);
  at::Tensor sum;
  for (size_t j = 0; j < edge.values.size(); ++j) {
    at::Tensor term = term_of(edge, j);
    sum = sum.defined() ? sum + term : term;
  }
  return sum;
}

at::Tensor weighted_values(const std::vector<EdgeTerms>& edges, const at::Tensor& w,
                           KernelBackend kernels) {
  std::vector<at::Tensor> values, maps;
  std::vector<int64_t> index;
  const EdgeTerms* only = nullptr;  // the last edge with values (the one, if with_values is 1)
  int with_values = 0;
  for (size_t i = 0; i < edges.size(); ++i) {
    const EdgeTerms& edge = edges[i];
    if (edge.values.empty()) continue;
    only = &edge;
    ++with_values;
    const int64_t offset = static_cast<int64_t>(i) * edge.row.numel();
    for (size_t j = 0; j < edge.values.size(); ++j) {
      values.push_back(edge.values[j]);
      maps.push_back(edge.maps[j]);
      index.push_back(offset + edge.index[j]);
    }
  }
  if (values.empty()) return {};
  // A lone weight of exactly 1 that carries no gradient (a single selection in the weight step)
  // changes nothing: skip the multiplication.
  if (values.size() == 1 && !maps[0].defined() && !only->row.requires_grad() &&
      only->row[only->index[0]].item<float>() == 1.0f)
    return values[0];
  if (with_values == 1) return edge_sum(*only, kernels);
  if (weighs_natively(values, w, kernels)) return native_weighted_sum(values, w, index, maps);
  at::Tensor sum;
  for (const EdgeTerms& edge : edges) {
    const at::Tensor term = edge_sum(edge, kernels);
    if (term.defined()) sum = sum.defined() ? sum + term : term;
  }
  return sum;
}

}  // namespace

StateReaders::StateReaders(at::Tensor state, int64_t autograd_reads, KernelBackend kernels)
    : state_(std::move(state)) {
  if (autograd_reads >= 2 && at::GradMode::is_enabled() && use_native_kernels(kernels, state_) &&
      can_fan_out(state_))
    aliases_ = native_fan_out(state_, autograd_reads);
}

at::Tensor StateReaders::take() { return next_ < aliases_.size() ? aliases_[next_++] : state_; }

MixedOpImpl::MixedOpImpl(int64_t channels, int64_t stride, KernelBackend kernels)
    : kernels_(kernels) {
  const auto& names = cnn_op_names();
  for (size_t k = 0; k < names.size(); ++k) {
    ops_.push_back(
        make_cnn_op(names[k], channels, stride, /*affine=*/false, /*pool_bn=*/true, kernels));
    register_module(names[k], ops_.back().ptr());
  }
}

int64_t MixedOpImpl::autograd_reads(const uint8_t* selected, ExecMode mode) const {
  int64_t reads = 0;
  for (size_t k = 0; k < ops_.size(); ++k)
    if (static_cast<int>(k) != kNoneOp && (mode == ExecMode::kDense || selected[k])) ++reads;
  return reads;
}

EdgeTerms MixedOpImpl::terms(StateReaders& reads, const at::Tensor& row, const uint8_t* selected,
                             ExecMode mode) {
  const at::Tensor& x = reads.state();
  EdgeTerms out;
  out.row = row;
  out.zero = [this, x] { return zero_output(x); };
  // An architecture step defers the unselected ops whose weight is exactly 0 when the row needs
  // a gradient: only that gradient needs their outputs.
  const bool defers = mode == ExecMode::kArchitecture && row.requires_grad();
  const at::Tensor row_values =
      defers ? row.detach().to(at::kCPU, at::kDouble).contiguous() : at::Tensor();
  std::vector<int64_t> deferred;
  for (size_t k = 0; k < ops_.size(); ++k) {
    const bool none = static_cast<int>(k) == kNoneOp;
    if (mode == ExecMode::kDense) {
      out.index.push_back(static_cast<int64_t>(k));
      out.values.push_back(ops_[k].forward(none ? x : reads.take()));
      out.maps.emplace_back();
      continue;
    }
    // `none` outputs zeros: it adds nothing to the output nor to any gradient.
    if (none) continue;
    if (selected[k]) {
      out.index.push_back(static_cast<int64_t>(k));
      kernels::WeightedOutput term = weighted_term(k, reads.take(), row);
      out.values.push_back(std::move(term.z));
      out.maps.push_back(std::move(term.map));
    } else if (mode == ExecMode::kArchitecture) {
      if (defers && row_values.data_ptr<double>()[k] == 0.0) {
        deferred.push_back(static_cast<int64_t>(k));
        continue;
      }
      at::NoGradGuard no_grad;
      out.index.push_back(static_cast<int64_t>(k));
      out.values.push_back(ops_[k].forward(x));
      out.maps.emplace_back();
    }
  }
  if (deferred.empty()) return out;
  out.deferred = c10::make_intrusive<DeferredTerms>();
  out.deferred->index = deferred;
  // The terms hold this module (not a copy) and x until the backward pass.
  auto self = std::static_pointer_cast<MixedOpImpl>(shared_from_this());
  out.deferred->measure = [self, x, deferred](size_t j, const at::Tensor& g) {
    return measure_op(self->ops_[deferred[j]], x, g, self->kernels_);
  };
  return out;
}

kernels::WeightedOutput MixedOpImpl::weighted_term(size_t k, const at::Tensor& x,
                                                   const at::Tensor& row) {
  // The ops that end in a fused native batch norm leave it to the node's sum.
  if (use_native_kernels(kernels_, x) && row.dim() == 1) {
    const kernels::OutputWeight weight{row, static_cast<int64_t>(k)};
    torch::nn::Module* op = ops_[k].ptr().get();
    if (auto* sep = op->as<SepConvImpl>()) return sep->forward_weighted(x, weight);
    if (auto* dil = op->as<DilConvImpl>()) return dil->forward_weighted(x, weight);
    if (auto* pool = op->as<PoolImpl>()) return pool->forward_weighted(x, weight);
  }
  return {ops_[k].forward(x), {}};
}

at::Tensor MixedOpImpl::forward(const at::Tensor& x, const at::Tensor& row, const uint8_t* selected,
                                ExecMode mode) {
  StateReaders reads(x, 0, kernels_);
  return combine_edges({terms(reads, row, selected, mode)}, row, kernels_);
}

at::Tensor MixedOpImpl::zero_output(const at::Tensor& x) { return ops_[kNoneOp].forward(x); }

at::Tensor combine_edges(const std::vector<EdgeTerms>& edges, const at::Tensor& w,
                         KernelBackend kernels) {
  at::Tensor sum = weighted_values(edges, w, kernels);
  for (const EdgeTerms& edge : edges) {
    if (!edge.deferred) continue;
    // The terms weigh 0 in the sum: each only needs the gradient of the sum, which is the
    // gradient of its edge's output too.
    if (!sum.defined()) sum = edge.zero();
    sum = attach_deferred_terms(sum, edge.row, edge.deferred);
  }
  return sum;
}

}  // namespace datanas
