// Figures of a run, drawn by real tools when they are installed (the set-up installs both):
// Graphviz renders cells, gnuplot plots training curves. Missing tools are not an error: the
// functions return false and the DOT/log files stay the source of truth.
#pragma once
#include <string>
#include <vector>

namespace datanas {

// Renders `dot_path` (x.dot) to x.svg and x.png beside it.
bool render_dot(const std::string& dot_path);

// Plots columns of a log.jsonl against its "epoch" key into `png_path`.
bool plot_log(const std::string& log_path, const std::string& png_path, const std::string& title,
              const std::vector<std::string>& keys);

}  // namespace datanas
