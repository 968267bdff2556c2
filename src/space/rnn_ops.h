// The DARTS recurrent cell's ops: activations applied inside a highway-style update. Op names
// are listed `none` first, as every cell space does; the functions need LibTorch, the names
// do not (rnn_op_names.cpp).
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace datanas {

const std::vector<std::string>& rnn_op_names();  // none, tanh, relu, sigmoid, identity
int rnn_op_index(const std::string& name);       // -1 when unknown

// The activation of op `op` (an index of rnn_op_names(), not `none`) applied to h.
at::Tensor rnn_activation(int op, const at::Tensor& h);

// The gated update of a node: s_prev + c * (act(h) - s_prev).
at::Tensor highway_update(const at::Tensor& s_prev, const at::Tensor& c, const at::Tensor& act_h);

}  // namespace datanas
