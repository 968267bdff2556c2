#include "nets/rnn_cell.h"

#include <ATen/ATen.h>

#include "space/rnn_ops.h"
#include "util/error.h"

namespace datanas {

RnnMasks make_rnn_masks(int64_t batch, const RnnCellOptions& o, bool training) {
  RnnMasks masks;
  if (!training) return masks;
  auto mask = [&](int64_t size, double p) {
    if (p <= 0) return at::Tensor();
    return at::empty({batch, size}).bernoulli_(1.0 - p) / (1.0 - p);
  };
  masks.x = mask(o.input_size, o.dropoutx);
  masks.h = mask(o.hidden_size, o.dropouth);
  return masks;
}

at::Tensor rnn_initial_state(const at::Tensor& x, const at::Tensor& h_prev, const at::Tensor& w0,
                             const RnnMasks& masks) {
  at::Tensor xm = masks.x.defined() ? x * masks.x : x;
  at::Tensor hm = masks.h.defined() ? h_prev * masks.h : h_prev;
  std::vector<at::Tensor> ch = at::cat({xm, hm}, -1).mm(w0).chunk(2, -1);
  return highway_update(h_prev, ch[0].sigmoid(), ch[1].tanh());
}

at::Tensor rnn_weight(int64_t rows, int64_t cols) {
  return at::empty({rows, cols}).uniform_(-0.04, 0.04);
}

RnnCellImpl::RnnCellImpl(const Genotype& genotype, const RnnCellOptions& options)
    : genotype_(genotype), options_(options) {
  if (!genotype.is_recurrent())
    throw Error("genotype: space \"" + genotype.space + "\" is not a recurrent cell (darts-rnn)");
  validate_genotype(genotype_);
  const int64_t H = options.hidden_size;
  w0_ = register_parameter("W0", rnn_weight(options.input_size + H, 2 * H));
  for (size_t j = 0; j < genotype_.recurrent.size(); ++j) {
    ws_.push_back(register_parameter("W" + std::to_string(j + 1), rnn_weight(H, 2 * H)));
    std::vector<int> ops;
    for (const OpInput& pair : genotype_.recurrent[j]) ops.push_back(rnn_op_index(pair.op));
    pair_ops_.push_back(ops);
  }
}

at::Tensor RnnCellImpl::step(const at::Tensor& x, const at::Tensor& h_prev, const RnnMasks& masks) {
  std::vector<at::Tensor> states = {rnn_initial_state(x, h_prev, w0_, masks)};
  for (size_t j = 0; j < genotype_.recurrent.size(); ++j) {
    const GenotypeNode& node = genotype_.recurrent[j];
    std::vector<at::Tensor> gates(states.size());  // [c, h] per distinct input, computed once
    at::Tensor sum;
    for (size_t p = 0; p < node.size(); ++p) {
      const int input = node[p].input;
      const at::Tensor& s = states[input];
      if (!gates[input].defined()) gates[input] = (masks.h.defined() ? s * masks.h : s).mm(ws_[j]);
      std::vector<at::Tensor> ch = gates[input].chunk(2, -1);
      at::Tensor update =
          highway_update(s, ch[0].sigmoid(), rnn_activation(pair_ops_[j][p], ch[1]));
      sum = sum.defined() ? sum + update : update;
    }
    states.push_back(node.size() == 1 ? sum : sum / static_cast<double>(node.size()));
  }
  at::Tensor out;
  for (int index : genotype_.concat) out = out.defined() ? out + states[index] : states[index];
  return out / static_cast<double>(genotype_.concat.size());
}

at::Tensor RnnCellImpl::forward(const at::Tensor& inputs, const at::Tensor& hidden) {
  const RnnMasks masks = make_rnn_masks(inputs.size(1), options_, is_training());
  std::vector<at::Tensor> outputs;
  at::Tensor h = hidden;
  for (int64_t t = 0; t < inputs.size(0); ++t) {
    h = step(inputs[t], h, masks);
    outputs.push_back(h);
  }
  return at::stack(outputs);
}

}  // namespace datanas
