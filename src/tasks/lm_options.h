// Settings of the language-modelling task shared by search and training: the corpus, BPTT and
// the model. Defaults are CPU-sized (the DARTS PTB protocol: --emsize 850 --nhid 850 --bptt 35
// --batch-size 64 --dropout 0.75 --dropouth 0.25 --dropoutx 0.75 --dropouti 0.2 --dropoute 0.1).
#pragma once
#include <cstdint>
#include <string>

#include "nets/rnn_model_options.h"

namespace datanas {

struct LmOptions {
  int64_t bptt = 35;
  bool variable_bptt = false;    // DARTS: length ~ N(bptt, 5) (bptt/2 with prob. 0.05), lr scaled
  int64_t eval_batch_size = 10;  // validation/test streams
  int64_t eval_limit = 0;        // tokens of valid.txt/test.txt evaluated per epoch (0 = all)
  RnnModelOptions model;
};

// Where `datanas corpus brown` writes by default and the LM commands read by default.
inline const char* default_lm_corpus_dir() { return "runs/brown"; }

// Visits the fields as search_options/train_options do (for config.json).
template <typename Options, typename Fn>
void for_each_lm_field(Options& o, Fn&& field) {
  field("bptt", o.bptt);
  field("variable_bptt", o.variable_bptt);
  field("eval_batch_size", o.eval_batch_size);
  field("eval_limit", o.eval_limit);
  field("emsize", o.model.emsize);
  field("nhid", o.model.nhid);
  field("dropout", o.model.dropout);
  field("dropouth", o.model.dropouth);
  field("dropoutx", o.model.dropoutx);
  field("dropouti", o.model.dropouti);
  field("dropoute", o.model.dropoute);
  field("lstm_layers", o.model.lstm_layers);
}

// Throws Error naming the flag.
void validate_lm_options(const LmOptions& options);

}  // namespace datanas
