// The files of a run folder, written atomically: config.json, log.jsonl, alphas.json,
// genotype.json and the cells as DOT.
#pragma once
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "space/genotype.h"

namespace datanas {

std::string run_file(const std::string& out_dir, const std::string& name);

// The files every run folder (search or training) holds; opening creates the folder.
struct RunFolder {
  std::string dir, config, log, checkpoint;
};
RunFolder open_run_folder(const std::string& dir);

// The config.json of an existing run, for --resume; throws Error when there is none.
nlohmann::json read_run_config(const std::string& dir);

void write_json_file(const std::string& path, const nlohmann::json& value);
nlohmann::json read_json_file(const std::string& path);  // throws Error naming the file

void write_log_lines(const std::string& path, const std::vector<nlohmann::json>& lines);
std::vector<nlohmann::json> read_log_lines(const std::string& path);  // missing file: empty

nlohmann::json tensor_to_json(const at::Tensor& table);  // 2-D table as nested lists
at::Tensor tensor_from_json(const nlohmann::json& rows, const std::string& source);

// genotype.json plus genotype_normal.dot and genotype_reduce.dot (recurrent cells:
// genotype_recurrent.dot)
void write_genotype_files(const std::string& out_dir, const Genotype& genotype);

}  // namespace datanas
