#include "space/rnn_ops.h"

#include <ATen/ATen.h>

#include "util/error.h"

namespace datanas {

at::Tensor rnn_activation(int op, const at::Tensor& h) {
  switch (op) {
    case 1:
      return at::tanh(h);
    case 2:
      return at::relu(h);
    case 3:
      return at::sigmoid(h);
    case 4:
      return h;
    default:
      throw Error("recurrent cell: op " + std::to_string(op) + " has no activation");
  }
}

at::Tensor highway_update(const at::Tensor& s_prev, const at::Tensor& c, const at::Tensor& act_h) {
  return s_prev + c * (act_h - s_prev);
}

}  // namespace datanas
