// A word-level corpus in the Penn Treebank layout: a folder with train.txt, valid.txt and
// test.txt, one sentence per line, words separated by white space. Every line gets <eos>
// appended; the vocabulary is every word of train.txt (in order of first appearance) plus
// <eos> and <unk>; words of valid/test outside it become <unk>. Real PTB (which already writes
// <unk>) and WikiText-2 read as they are.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace datanas {

class Vocabulary {
 public:
  int64_t add(const std::string& word);         // index of the word, adding it when new
  int64_t find(const std::string& word) const;  // -1 when absent
  const std::string& word(int64_t index) const { return words_.at(index); }
  int64_t size() const { return static_cast<int64_t>(words_.size()); }

 private:
  std::vector<std::string> words_;
  std::unordered_map<std::string, int64_t> index_;
};

struct Corpus {
  Vocabulary vocab;
  at::Tensor train, valid, test;  // token ids, int64, 1-D
  int64_t eos = 0, unk = 0;
  int64_t unk_in_valid = 0, unk_in_test = 0;  // words mapped to <unk> (not written as <unk>)
};

// Throws Error naming the file when the folder or a file is missing or holds no words.
Corpus load_corpus(const std::string& dir);

// Splits a token stream into `batch` columns (the tail that does not fill a row is dropped):
// (length / batch, batch), column b is the b-th contiguous slice of the stream.
at::Tensor batchify(const at::Tensor& tokens, int64_t batch);

// Inputs rows [start, start + length) and targets shifted by one row, clipped at the end.
struct LmBatch {
  at::Tensor input, target;  // (T, B) and (T * B)
};
LmBatch lm_batch(const at::Tensor& batched, int64_t start, int64_t length);

}  // namespace datanas
