// datanas: differentiable architecture search with DATA (Ensemble Gumbel-Softmax + ADC).
#include <cstdio>
#include <map>

#include <c10/util/Exception.h>

#include "commands.h"
#include "util/error.h"

int main(int argc, char** argv) {
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
  }
  return 1;
}
