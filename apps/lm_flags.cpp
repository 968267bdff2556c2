// Flags of the language-modelling task (`search --task lm`, `train --task lm`) and the LM
// defaults of the flags the CNN task shares: a flag the user did not give takes its LM value.
#include "commands.h"

namespace datanas::cli {

void add_lm_flags(CLI::App& app, LmOptions& o) {
  const char* group = "language modelling (--task lm)";
  app.add_option("--bptt", o.bptt, "BPTT window length")->capture_default_str()->group(group);
  app.add_flag("--variable-bptt", o.variable_bptt,
               "DARTS variable window lengths ~N(bptt, 5), lr scaled by length")
      ->group(group);
  app.add_option("--eval-batch-size", o.eval_batch_size, "batch of the valid/test streams")
      ->capture_default_str()
      ->group(group);
  app.add_option("--eval-limit", o.eval_limit, "valid.txt tokens evaluated per epoch (0 = all)")
      ->capture_default_str()
      ->group(group);
  app.add_option("--emsize", o.model.emsize, "embedding size (tied: equals --nhid for darts)")
      ->capture_default_str()
      ->group(group);
  app.add_option("--nhid", o.model.nhid, "hidden size")->capture_default_str()->group(group);
  app.add_option("--dropout", o.model.dropout, "locked dropout on the cell output")
      ->capture_default_str()
      ->group(group);
  app.add_option("--dropouth", o.model.dropouth, "dropout on the cell's hidden states")
      ->capture_default_str()
      ->group(group);
  app.add_option("--dropoutx", o.model.dropoutx, "dropout on x_t inside the cell")
      ->capture_default_str()
      ->group(group);
  app.add_option("--dropouti", o.model.dropouti, "locked dropout on the embedded input")
      ->capture_default_str()
      ->group(group);
  app.add_option("--dropoute", o.model.dropoute, "whole-word embedding dropout")
      ->capture_default_str()
      ->group(group);
}

namespace {

template <typename T>
void fallback(CLI::App& app, const char* flag, T& value, T lm_value) {
  if (app.get_option(flag)->count() == 0) value = lm_value;
}

}  // namespace

// CPU-sized: a search epoch on the Brown corpus takes a few minutes on 2 cores.
void apply_lm_search_defaults(CLI::App& app, SearchOptions& o) {
  fallback(app, "--limit", o.limit, int64_t{LmDefaults::search_limit});
  fallback(app, "--nodes", o.net.nodes, 8);
  fallback(app, "--batch-size", o.batch_size, int64_t{32});
  fallback(app, "--epochs", o.epochs, 3);
  fallback(app, "--lr", o.lr, 20.0);
  fallback(app, "--lr-min", o.lr_min, 2.0);
  fallback(app, "--momentum", o.momentum, 0.0);
  fallback(app, "--weight-decay", o.weight_decay, 5e-7);
  fallback(app, "--grad-clip", o.grad_clip, 0.25);
  fallback(app, "--arch-lr", o.arch_lr, 3e-3);
  fallback(app, "--arch-weight-decay", o.arch_weight_decay, 1e-3);
  o.arch_beta1 = 0.9;  // DARTS rnn/architect.py: Adam's default betas
  fallback(app, "--eval-limit", o.lm.eval_limit, int64_t{LmDefaults::search_eval_limit});
  fallback(app, "--eval-batch-size", o.lm.eval_batch_size, int64_t{64});
}

void apply_lm_train_defaults(CLI::App& app, TrainOptions& o) {
  fallback(app, "--genotype", o.genotype, std::string("DARTS_RNN"));
  fallback(app, "--batch-size", o.batch_size, int64_t{32});
  fallback(app, "--epochs", o.epochs, 3);
  fallback(app, "--lr", o.lr, 20.0);
  fallback(app, "--momentum", o.momentum, 0.0);
  fallback(app, "--weight-decay", o.weight_decay, 8e-7);
  fallback(app, "--grad-clip", o.grad_clip, 0.25);
}

}  // namespace datanas::cli
