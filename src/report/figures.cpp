#include "report/figures.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "search/run_files.h"
#include "util/files.h"

namespace datanas {

static std::string shell_quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

static bool have_tool(const std::string& tool) {
  return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0;
}

static std::string without_extension(const std::string& path) {
  const size_t dot = path.rfind('.');
  return dot == std::string::npos ? path : path.substr(0, dot);
}

bool render_dot(const std::string& dot_path) {
  if (!have_tool("dot")) return false;
  const std::string stem = without_extension(dot_path);
  bool ok = true;
  for (const char* format : {"svg", "png"}) {
    const std::string out = stem + "." + format;
    const std::string temp = out + ".tmp";
    ok = ok && std::system(("dot -T" + std::string(format) + " " + shell_quote(dot_path) + " -o " +
                            shell_quote(temp) + " 2>/dev/null && mv " + shell_quote(temp) + " " +
                            shell_quote(out))
                               .c_str()) == 0;
  }
  return ok;
}

bool plot_log(const std::string& log_path, const std::string& png_path, const std::string& title,
              const std::vector<std::string>& keys) {
  if (!have_tool("gnuplot")) return false;
  const auto lines = read_log_lines(log_path);
  if (lines.empty()) return false;
  std::ostringstream data;
  for (const auto& line : lines) {
    data << line.value("epoch", 0);
    for (const auto& key : keys) data << ' ' << (line.contains(key) ? line[key].get<double>() : 0.0);
    data << '\n';
  }
  const std::string data_path = png_path + ".dat";
  const std::string temp_png = png_path + ".tmp";
  write_file_atomic(data_path, data.str());
  std::ostringstream script;
  script << "set terminal pngcairo size 900,500 noenhanced\n"
         << "set output " << shell_quote(temp_png) << "\n"
         << "set title " << shell_quote(title) << "\nset xlabel 'epoch'\nset grid\nset key outside\n"
         << "plot ";
  for (size_t i = 0; i < keys.size(); ++i)
    script << (i ? ", " : "") << shell_quote(data_path) << " using 1:" << i + 2
           << " with linespoints title " << shell_quote(keys[i]);
  script << "\n";
  const std::string script_path = png_path + ".gp";
  write_file_atomic(script_path, script.str());
  const bool ok = std::system(("gnuplot " + shell_quote(script_path) + " 2>/dev/null && mv " +
                               shell_quote(temp_png) + " " + shell_quote(png_path))
                                  .c_str()) == 0;
  std::remove(data_path.c_str());
  std::remove(script_path.c_str());
  return ok;
}

}  // namespace datanas
