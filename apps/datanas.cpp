// datanas: differentiable architecture search with DATA (Ensemble Gumbel-Softmax + ADC).
#include <c10/util/Exception.h>

#include <cstdio>
#include <map>

#include "commands.h"
#include "util/error.h"
#include "util/runtime.h"

int main(int argc, char** argv) {
  datanas::keep_freed_memory();
  CLI::App app{"datanas: differentiable architecture search with Ensemble Gumbel-Softmax (DATA)"};
  app.require_subcommand(1);
  std::map<CLI::App*, datanas::cli::Command> commands;
  auto add = [&](const char* name, const char* about, auto registrar) {
    CLI::App* sub = app.add_subcommand(name, about);
    commands[sub] = registrar(*sub);
  };
  add("search", "search an architecture (supernet + sampler), derive it, measure the gap",
      datanas::cli::add_search);
  add("derive", "re-derive a genotype from a run's saved probabilities", datanas::cli::add_derive);
  add("sample", "draw EGS codes for one decision and print their statistics",
      datanas::cli::add_sample);
  add("train", "train a discrete architecture from scratch", datanas::cli::add_train);
  add("eval", "evaluate a trained model on the test set", datanas::cli::add_eval);
  add("info", "parameters, multiply-adds and cells of an architecture", datanas::cli::add_info);
  add("random", "draw a random architecture of the space (random-search baseline)",
      datanas::cli::add_random);
  add("run", "the whole pipeline: search, derive, retrain, report", datanas::cli::add_run);
  add("bench", "time search iterations (dense vs fast) or single ops", datanas::cli::add_bench);
  add("corpus", "convert a corpus to the PTB layout (train/valid/test.txt)",
      datanas::cli::add_corpus);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) return run();
  } catch (const datanas::Error& e) {
    std::fprintf(stderr, "datanas: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    std::fprintf(stderr, "datanas: error: %s\n", what.substr(0, what.find('\n')).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "datanas: error: %s\n", e.what());
    return 1;
  }
  return 1;
}
