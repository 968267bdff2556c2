// libFuzzer target: the PTB text reader (see fuzz_inputs.h for the input format).
#include "fuzz_inputs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  datanas::fuzz::corpus_input(data, size);
  return 0;
}
