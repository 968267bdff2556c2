// The subcommands of the datanas CLI. Each registers its flags on the app and returns the
// function that runs it.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>

#include "search/search_options.h"
#include "search/searcher.h"
#include "train/train_options.h"

namespace datanas::cli {

using Command = std::function<int()>;

Command add_search(CLI::App& app);
Command add_derive(CLI::App& app);
Command add_sample(CLI::App& app);
Command add_train(CLI::App& app);
Command add_eval(CLI::App& app);
Command add_info(CLI::App& app);
Command add_random(CLI::App& app);
Command add_run(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_corpus(CLI::App& app);

// The language-modelling flags and the LM values of shared flags the user did not give.
struct LmDefaults {
  static constexpr int64_t search_limit = 200000;      // training tokens of a search
  static constexpr int64_t search_eval_limit = 30000;  // valid/test tokens per search epoch
};
void add_lm_flags(CLI::App& app, LmOptions& options);
void apply_lm_search_defaults(CLI::App& app, SearchOptions& options);
void apply_lm_train_defaults(CLI::App& app, TrainOptions& options);

// Search flags shared by `search` and `run`; the enums arrive as text and are parsed late so
// a bad value gets the flag's own error message.
struct SearchFlags {
  SearchOptions options;
  std::string granularity = "node", parametrisation = "softmax", weights = "normalised";
  std::string kernels = "native";
  std::string memory_format = "auto";
};
void add_search_flags(CLI::App& app, SearchFlags& flags);
SearchOptions resolve_search_flags(const SearchFlags& flags);
void print_search_result(const SearchResult& result, const SearchOptions& options);

// `--memory-format auto|channels-last|nchw` into `memory_format` (see channels_last_for).
void add_memory_format_flag(CLI::App& app, std::string& memory_format);

// Training flags shared by `train` and `run`, and the curves of a finished training run.
void add_train_flags(CLI::App& app, TrainOptions& options);
void plot_training(const std::string& out_dir);

}  // namespace datanas::cli
