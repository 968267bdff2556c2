// Pieces shared by the language-modelling search and training: loading the corpus (with the
// hint to convert Brown when the default folder is missing), the BPTT window schedule,
// perplexity evaluation and the reference-BLAS warning.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "nets/rnn_model.h"
#include "tasks/lm_options.h"

namespace datanas {

// `dir` empty means default_lm_corpus_dir(); a missing default says how to make it.
Corpus load_lm_corpus(const std::string& dir);

// The first `limit` tokens (0 = all).
at::Tensor limit_tokens(const at::Tensor& tokens, int64_t limit);

struct BpttWindow {
  int64_t start = 0, length = 0;
};
// Consecutive windows covering rows [0, rows - 1) of a batchified stream: all of length bptt,
// or with `variable` the DARTS rule (bptt/2 with probability 0.05, then ~N(bptt, 5), at least
// 5, at most bptt + 20), drawn from `seed`.
std::vector<BpttWindow> bptt_windows(int64_t rows, int64_t bptt, bool variable, uint64_t seed);

// exp(mean cross-entropy per token) of `model` in eval mode over the batchified `stream`, with
// a fresh hidden state and windows of length bptt. `weights_for_window` gives the search core's
// architecture per window (nullptr for the discrete cores).
double evaluate_perplexity(RnnModel& model, const at::Tensor& stream, int64_t bptt,
                           const std::function<CellWeights()>& weights_for_window,
                           const at::Device& device);

// True when sgemm_ in this process resolves to the reference BLAS (not OpenBLAS, MKL, BLIS...):
// dladdr of the symbol, its file with symlinks (Debian alternatives) resolved.
bool reference_blas_active();
// Prints one warning line to stderr when reference_blas_active().
void warn_if_reference_blas();

}  // namespace datanas
