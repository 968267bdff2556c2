// The DARTS recurrent cell's ops: activations applied inside a highway-style update. The
// functions need LibTorch; the names (rnn_op_names.h) do not.
#pragma once
#include <ATen/core/Tensor.h>

#include "space/rnn_op_names.h"

namespace datanas {

// The activation of op `op` (an index of rnn_op_names(), not `none`) applied to h.
at::Tensor rnn_activation(int op, const at::Tensor& h);

// The gated update of a node: s_prev + c * (act(h) - s_prev).
at::Tensor highway_update(const at::Tensor& s_prev, const at::Tensor& c, const at::Tensor& act_h);

}  // namespace datanas
