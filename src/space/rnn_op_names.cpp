#include <string>
#include <vector>

#include "space/rnn_op_names.h"

namespace datanas {

const std::vector<std::string>& rnn_op_names() {
  static const std::vector<std::string> names = {"none", "tanh", "relu", "sigmoid", "identity"};
  return names;
}

int rnn_op_index(const std::string& name) {
  const std::vector<std::string>& names = rnn_op_names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<int>(i);
  return -1;
}

}  // namespace datanas
