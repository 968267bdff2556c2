#include "data/corpus.h"

#include <ATen/ATen.h>

#include <sstream>

#include "util/error.h"
#include "util/files.h"

namespace datanas {

int64_t Vocabulary::add(const std::string& word) {
  auto it = index_.find(word);
  if (it != index_.end()) return it->second;
  words_.push_back(word);
  index_.emplace(word, size() - 1);
  return size() - 1;
}

int64_t Vocabulary::find(const std::string& word) const {
  auto it = index_.find(word);
  return it == index_.end() ? -1 : it->second;
}

namespace {

// Reads one split; with `grow` the words join the vocabulary, otherwise unknown words are
// counted in `unknown` and become <unk>.
at::Tensor read_split(const std::string& path, Vocabulary& vocab, bool grow, int64_t eos,
                      int64_t unk, int64_t* unknown) {
  if (!file_exists(path))
    throw Error(path +
                ": missing (expected train.txt, valid.txt and test.txt, one sentence a line)");
  std::istringstream in(read_text_file(path));
  std::vector<int64_t> ids;
  int64_t words = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream tokens(line);
    bool any = false;
    for (std::string word; tokens >> word;) {
      any = true;
      ++words;
      int64_t id = grow ? vocab.add(word) : vocab.find(word);
      if (id < 0) {
        id = unk;
        ++*unknown;
      }
      ids.push_back(id);
    }
    if (any) ids.push_back(eos);
  }
  if (words == 0) throw Error(path + ": no words (expected one sentence per line)");
  return at::tensor(ids, at::kLong);
}

}  // namespace

Corpus load_corpus(const std::string& dir) {
  if (dir.empty() || !file_exists(dir))
    throw Error("--data " + dir +
                ": no such corpus folder (expected train.txt, valid.txt, test.txt)");
  Corpus corpus;
  corpus.eos = corpus.vocab.add("<eos>");
  int64_t none = 0;
  // <unk> is added after train.txt so PTB's own <unk> keeps its place; ids are fixed before use.
  corpus.train = read_split(dir + "/train.txt", corpus.vocab, true, corpus.eos, -1, &none);
  corpus.unk = corpus.vocab.add("<unk>");
  corpus.valid = read_split(dir + "/valid.txt", corpus.vocab, false, corpus.eos, corpus.unk,
                            &corpus.unk_in_valid);
  corpus.test = read_split(dir + "/test.txt", corpus.vocab, false, corpus.eos, corpus.unk,
                           &corpus.unk_in_test);
  return corpus;
}

at::Tensor batchify(const at::Tensor& tokens, int64_t batch) {
  const int64_t rows = tokens.size(0) / batch;
  if (rows < 2)
    throw Error("--batch-size " + std::to_string(batch) + ": the split has only " +
                std::to_string(tokens.size(0)) + " tokens (need at least two rows)");
  return tokens.slice(0, 0, rows * batch).view({batch, rows}).t().contiguous();
}

LmBatch lm_batch(const at::Tensor& batched, int64_t start, int64_t length) {
  const int64_t end = std::min(start + length, batched.size(0) - 1);
  return {batched.slice(0, start, end), batched.slice(0, start + 1, end + 1).reshape({-1})};
}

}  // namespace datanas
