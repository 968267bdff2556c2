// One fuzz input per reader, shared by the libFuzzer targets (fuzz_*.cpp) and the regular test
// suite (tests/test_fuzz_inputs.cpp replays fuzz/corpus and fuzz/regressions through them).
// Each returns true when the reader accepted the input and false when it refused it with a
// datanas::Error; any other exception, a crash, a hang or a sanitizer report is a bug.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace datanas::fuzz {

bool genotype_input(const uint8_t* data, size_t size);
// First byte: bit 0 labels (else images), bit 1 gzip the rest before writing it (else as is).
bool idx_input(const uint8_t* data, size_t size);
// First byte: bit 0 CIFAR-100 records (2 label bytes), else CIFAR-10.
bool cifar_input(const uint8_t* data, size_t size);
// First byte: bit 0 a model file (load_model_file), else a search checkpoint of the fixed tiny
// configuration of fuzz_search_state().
bool checkpoint_input(const uint8_t* data, size_t size);

// The PTB text reader (load_corpus): the input, split at its first two NUL bytes, is
// train.txt, valid.txt and test.txt of a scratch folder.
bool corpus_input(const uint8_t* data, size_t size);

// Writes valid seeds for checkpoint_input into `dir` (search.pt, model.pt, prefixed with the
// selector byte), for fuzz/corpus/checkpoint.
void write_checkpoint_seeds(const std::string& dir);

}  // namespace datanas::fuzz
