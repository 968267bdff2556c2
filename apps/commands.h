// The subcommands of the datanas CLI. Each registers its flags on the app and returns the
// function that runs it.
#pragma once
#include <functional>

#include <CLI/CLI.hpp>

namespace datanas::cli {

using Command = std::function<int()>;

Command add_search(CLI::App& app);
Command add_derive(CLI::App& app);
Command add_sample(CLI::App& app);

}  // namespace datanas::cli
