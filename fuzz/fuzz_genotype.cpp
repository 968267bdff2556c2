// libFuzzer target: the genotype reader (see fuzz_inputs.h for the input format).
#include "fuzz_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  datanas::fuzz::genotype_input(data, size);
  return 0;
}
