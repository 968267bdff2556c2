// The final model of a training run: weights plus what rebuilds the network (genotype, network
// options, data set), in one file, so `datanas eval --model FILE` needs nothing else.
#pragma once
#include <string>

#include "nets/network.h"
#include "space/genotype.h"

namespace datanas {

struct ModelFile {
  Genotype genotype;
  NetworkOptions options;
  std::string dataset;
  Network network{nullptr};
};

void save_model_file(const std::string& path, const ModelFile& model);  // atomic
// Throws Error naming the file when it is missing, truncated or not a datanas model.
ModelFile load_model_file(const std::string& path);

}  // namespace datanas
