// The names of the DARTS recurrent cell's ops, `none` first as in every cell space. Apart from
// rnn_ops.h so that code which only names ops (cell spaces, genotypes) needs no LibTorch.
#pragma once
#include <string>
#include <vector>

namespace datanas {

const std::vector<std::string>& rnn_op_names();  // none, tanh, relu, sigmoid, identity
int rnn_op_index(const std::string& name);       // -1 when unknown

}  // namespace datanas
