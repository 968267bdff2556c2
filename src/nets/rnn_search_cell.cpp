#include "nets/rnn_search_cell.h"

#include <ATen/ATen.h>

#include "space/rnn_ops.h"
#include "util/error.h"

namespace datanas {

RnnSearchCellImpl::RnnSearchCellImpl(const CellSpace& space, const RnnCellOptions& options)
    : space_(space), options_(options) {
  if (space.leading != 1 || space.ops != static_cast<int>(rnn_op_names().size()))
    throw Error("recurrent search cell: expected the darts-rnn cell space");
  const int64_t H = options.hidden_size;
  w0_ = register_parameter("W0", rnn_weight(options.input_size + H, 2 * H));
  for (int j = 0; j < space.nodes; ++j)
    ws_.push_back(register_parameter("W" + std::to_string(j + 1), rnn_weight(H, 2 * H)));
}

namespace {

// sum_i sum_{k != none} w[i, k] * (s_i + c_i * (op_k(h_i) - s_i)) over the inputs `rows` of one
// node: states (P, B, H), ch (P, B, 2H), weights (P, ops).
at::Tensor mix(const at::Tensor& states, const at::Tensor& ch, const at::Tensor& weights) {
  std::vector<at::Tensor> parts = ch.chunk(2, -1);
  at::Tensor c = parts[0].sigmoid(), h = parts[1];
  at::Tensor acts = at::stack({h.tanh(), h.relu(), h.sigmoid(), h});  // (4, P, B, H)
  at::Tensor updates = states.unsqueeze(0) + c.unsqueeze(0) * (acts - states.unsqueeze(0));
  at::Tensor w = weights.slice(1, 1).t().unsqueeze(-1).unsqueeze(-1);  // (4, P, 1, 1)
  return (updates * w).sum(at::IntArrayRef{0, 1});
}

}  // namespace

at::Tensor RnnSearchCellImpl::step(const at::Tensor& x, const at::Tensor& h_prev,
                                   const CellWeights& w, ExecMode mode, const RnnMasks& masks) {
  const int K = space_.ops;
  std::vector<at::Tensor> states = {rnn_initial_state(x, h_prev, w0_, masks)};
  for (int j = 0; j < space_.nodes; ++j) {
    const int first = space_.node_first_edge(j), inputs = space_.node_inputs(j);
    std::vector<int64_t> chosen, others;
    for (int i = 0; i < inputs; ++i) {
      bool any = mode == ExecMode::kDense;
      for (int k = 1; k < K && !any; ++k) any = w.is_selected(first + i, k, K);
      (any ? chosen : others).push_back(i);
    }
    at::Tensor rows = w.weights.slice(0, first, first + inputs);
    auto node_mix = [&](const std::vector<int64_t>& which, bool grad) {
      at::Tensor index = at::tensor(which, at::kLong).to(x.device());
      at::Tensor picked =
          at::stack(std::vector<at::Tensor>(states.begin(), states.begin() + inputs))
              .index_select(0, index);
      at::Tensor ch;
      {
        at::AutoGradMode mode_guard(grad && at::GradMode::is_enabled());
        at::Tensor masked = masks.h.defined() ? picked * masks.h : picked;
        ch = at::matmul(masked, ws_[j]);
        if (!grad) {
          ch = ch.detach();
          picked = picked.detach();
        }
      }
      return mix(picked, ch, rows.index_select(0, index));
    };
    at::Tensor s;
    if (!chosen.empty()) s = node_mix(chosen, true);
    if (mode == ExecMode::kArchitecture && !others.empty()) {
      at::Tensor rest = node_mix(others, false);
      s = s.defined() ? s + rest : rest;
    }
    if (!s.defined()) s = at::zeros_like(states[0]);  // only `none` selected
    states.push_back(s);
  }
  at::Tensor out = states[1];
  for (int j = 2; j <= space_.nodes; ++j) out = out + states[j];
  return out / static_cast<double>(space_.nodes);
}

at::Tensor RnnSearchCellImpl::forward(const at::Tensor& inputs, const at::Tensor& hidden,
                                      const CellWeights& w, ExecMode mode) {
  const RnnMasks masks = make_rnn_masks(inputs.size(1), options_, is_training());
  std::vector<at::Tensor> outputs;
  at::Tensor h = hidden;
  for (int64_t t = 0; t < inputs.size(0); ++t) {
    h = step(inputs[t], h, w, mode, masks);
    outputs.push_back(h);
  }
  return at::stack(outputs);
}

}  // namespace datanas
