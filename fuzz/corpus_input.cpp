#include <ATen/ATen.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "data/corpus.h"
#include "fuzz_inputs.h"
#include "scratch.h"

namespace datanas::fuzz {

bool corpus_input(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const fs::path dir =
      fs::temp_directory_path() / ("datanas_fuzz_" + std::to_string(::getpid()) + "_corpus");
  fs::create_directories(dir);
  size_t start = 0;
  for (const char* name : {"train.txt", "valid.txt", "test.txt"}) {
    const size_t end = std::min(bytes.find('\0', start), bytes.size());
    std::ofstream(dir / name, std::ios::binary | std::ios::trunc)
        << bytes.substr(std::min(start, bytes.size()), end - std::min(start, bytes.size()));
    start = end + 1;
  }
  const bool ok = accepted([&] {
    const Corpus corpus = load_corpus(dir.string());
    const int64_t vocab = corpus.vocab.size();
    for (const at::Tensor& tokens : {corpus.train, corpus.valid, corpus.test}) {
      if (tokens.numel() == 0) throw std::logic_error("an accepted split holds no tokens");
      if (tokens.min().item<int64_t>() < 0 || tokens.max().item<int64_t>() >= vocab)
        throw std::logic_error("a token id is outside the vocabulary");
    }
  });
  fs::remove_all(dir);
  return ok;
}

}  // namespace datanas::fuzz
