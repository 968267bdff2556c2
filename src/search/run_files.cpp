#include "search/run_files.h"

#include <ATen/ATen.h>

#include <sstream>

#include "util/error.h"
#include "util/files.h"

namespace datanas {
using nlohmann::json;

std::string run_file(const std::string& out_dir, const std::string& name) {
  return out_dir + "/" + name;
}

RunFolder open_run_folder(const std::string& dir) {
  make_directories(dir);
  // A run killed while writing leaves NAME.tmp.PID beside the intact NAME: drop those.
  remove_stale_temp_files(dir);
  return {dir, run_file(dir, "config.json"), run_file(dir, "log.jsonl"),
          run_file(dir, "checkpoint.pt")};
}

json read_run_config(const std::string& dir) {
  const std::string config = run_file(dir, "config.json");
  if (!file_exists(config)) throw Error(config + ": no run to resume (config.json missing)");
  return read_json_file(config);
}

void write_json_file(const std::string& path, const json& value) {
  write_file_atomic(path, value.dump(2) + "\n");
}

json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {  // parse_error or out_of_range (number overflow)
    throw Error(path + ": invalid JSON (" + e.what() + ")");
  }
}

void write_log_lines(const std::string& path, const std::vector<json>& lines) {
  std::string text;
  for (const json& line : lines) text += line.dump() + "\n";
  write_file_atomic(path, text);
}

std::vector<json> read_log_lines(const std::string& path) {
  std::vector<json> lines;
  if (!file_exists(path)) return lines;
  std::istringstream in(read_text_file(path));
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    try {
      lines.push_back(json::parse(line));
    } catch (const json::exception&) {
      throw Error(path + ":" + std::to_string(number) + ": invalid JSON line");
    }
  }
  return lines;
}

json tensor_to_json(const at::Tensor& table) {
  at::Tensor t = table.detach().to(at::kCPU).to(at::kDouble).contiguous();
  json rows = json::array();
  for (int64_t i = 0; i < t.size(0); ++i) {
    json row = json::array();
    for (int64_t j = 0; j < t.size(1); ++j) row.push_back(t[i][j].item<double>());
    rows.push_back(row);
  }
  return rows;
}

at::Tensor tensor_from_json(const json& rows, const std::string& source) {
  if (!rows.is_array() || rows.empty() || !rows[0].is_array() || rows[0].empty())
    throw Error(source + ": expected a non-empty table of numbers");
  const int64_t n = rows.size(), m = rows[0].size();
  at::Tensor t = at::zeros({n, m}, at::kDouble);
  for (int64_t i = 0; i < n; ++i) {
    if (!rows[i].is_array() || static_cast<int64_t>(rows[i].size()) != m)
      throw Error(source + ": row " + std::to_string(i) + " has the wrong length");
    for (int64_t j = 0; j < m; ++j) {
      if (!rows[i][j].is_number()) throw Error(source + ": non-numeric entry");
      t[i][j] = rows[i][j].get<double>();
    }
  }
  return t.to(at::kFloat);
}

void write_genotype_files(const std::string& out_dir, const Genotype& genotype) {
  save_genotype(run_file(out_dir, "genotype.json"), genotype);
  if (genotype.is_recurrent()) {
    write_file_atomic(run_file(out_dir, "genotype_recurrent.dot"),
                      genotype_to_dot(genotype, "recurrent"));
    return;
  }
  write_file_atomic(run_file(out_dir, "genotype_normal.dot"), genotype_to_dot(genotype, "normal"));
  write_file_atomic(run_file(out_dir, "genotype_reduce.dot"), genotype_to_dot(genotype, "reduce"));
}

}  // namespace datanas
