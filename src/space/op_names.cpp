// The op name table lives apart from ops.cpp so that code which only names ops (genotypes, the
// CLI) does not pull in LibTorch.
#include <string>
#include <vector>

#include "space/genotype.h"

namespace datanas {

const std::vector<std::string>& cnn_op_names() {
  static const std::vector<std::string> names = {
      "none",         "max_pool_3x3", "avg_pool_3x3", "skip_connect",
      "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
  };
  return names;
}

int cnn_op_index(const std::string& name) {
  const std::vector<std::string>& names = cnn_op_names();
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace datanas
