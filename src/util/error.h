// One exception type for every user-facing failure: bad files, bad flags, bad genotypes.
// Its message is a single line that names what was wrong and what was expected; the CLI prints
// it and exits non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace datanas {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace datanas
