#include "tasks/lm_common.h"

#include <ATen/ATen.h>
#include <dlfcn.h>

#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "util/error.h"
#include "util/files.h"

namespace datanas {

Corpus load_lm_corpus(const std::string& dir) {
  const std::string folder = dir.empty() ? default_lm_corpus_dir() : dir;
  if (dir.empty() && !file_exists(folder + "/train.txt"))
    throw Error("--data: no corpus in the default folder " + folder +
                " (make it with `datanas corpus brown --out " + folder +
                "`, or pass --data DIR with train.txt, valid.txt, test.txt)");
  return load_corpus(folder);
}

at::Tensor limit_tokens(const at::Tensor& tokens, int64_t limit) {
  return limit > 0 && limit < tokens.size(0) ? tokens.slice(0, 0, limit) : tokens;
}

std::vector<BpttWindow> bptt_windows(int64_t rows, int64_t bptt, bool variable, uint64_t seed) {
  std::vector<BpttWindow> windows;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int64_t start = 0; start < rows - 1;) {
    int64_t length = bptt;
    if (variable) {
      const double mean = uniform(rng) < 0.95 ? static_cast<double>(bptt) : bptt / 2.0;
      std::normal_distribution<double> normal(mean, 5.0);
      length = std::max<int64_t>(5, static_cast<int64_t>(normal(rng)));
      length = std::min<int64_t>(length, bptt + 20);
    }
    length = std::min(length, rows - 1 - start);
    windows.push_back({start, length});
    start += length;
  }
  return windows;
}

double evaluate_perplexity(RnnModel& model, const at::Tensor& stream, int64_t bptt,
                           const std::function<CellWeights()>& weights_for_window,
                           const at::Device& device) {
  at::NoGradGuard no_grad;
  model->eval();
  LmHidden hidden = model->initial_hidden(stream.size(1), device);
  double loss_sum = 0;
  int64_t tokens = 0;
  for (const BpttWindow& w : bptt_windows(stream.size(0), bptt, false, 0)) {
    LmBatch batch = lm_batch(stream, w.start, w.length);
    at::Tensor logits;
    if (weights_for_window) {
      CellWeights weights = weights_for_window();
      weights.weights = weights.weights.to(device);
      logits = model->forward(batch.input.to(device), hidden, &weights, ExecMode::kSelected);
    } else {
      logits = model->forward(batch.input.to(device), hidden);
    }
    const int64_t n = batch.target.size(0);
    loss_sum += at::cross_entropy_loss(logits, batch.target.to(device)).item<double>() * n;
    tokens += n;
  }
  return tokens ? std::exp(loss_sum / tokens) : 0.0;
}

bool reference_blas_active() {
  // The library that sgemm_ resolves to in this process, through the alternatives symlinks.
  void* symbol = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info;
  if (!symbol || !dladdr(symbol, &info) || !info.dli_fname) return false;
  char resolved[PATH_MAX];
  const std::string path = realpath(info.dli_fname, resolved) ? resolved : info.dli_fname;
  const bool optimised =
      path.find("openblas") != std::string::npos || path.find("mkl") != std::string::npos ||
      path.find("blis") != std::string::npos || path.find("atlas") != std::string::npos;
  return !optimised && path.find("libblas") != std::string::npos;
}

void warn_if_reference_blas() {
  if (reference_blas_active())
    std::fprintf(stderr,
                 "datanas: warning: the reference BLAS is active (matrix products about 20x "
                 "slower); install libopenblas0-openmp (scripts/setup.sh)\n");
}

}  // namespace datanas
