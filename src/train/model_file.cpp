#include "train/model_file.h"

#include <torch/serialize.h>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/files.h"
#include "util/zip_check.h"

namespace datanas {
using nlohmann::json;

static json network_options_json(const NetworkOptions& o) {
  return {{"kind", o.kind},
          {"input_channels", o.input_channels},
          {"init_channels", o.init_channels},
          {"layers", o.layers},
          {"classes", o.classes},
          {"auxiliary", o.auxiliary},
          {"channels_last", o.channels_last}};
}

static NetworkOptions network_options_from(const json& j) {
  NetworkOptions o;
  o.kind = j.at("kind").get<std::string>();
  o.input_channels = j.at("input_channels").get<int64_t>();
  o.init_channels = j.at("init_channels").get<int64_t>();
  o.layers = j.at("layers").get<int>();
  o.classes = j.at("classes").get<int>();
  o.auxiliary = j.at("auxiliary").get<bool>();
  o.channels_last = j.value("channels_last", o.channels_last);
  // A corrupt or hostile file must not make the network allocate without bound.
  if (o.input_channels < 1 || o.input_channels > 64 || o.init_channels < 2 ||
      o.init_channels > 4096 || o.layers < 3 || o.layers > 1000 || o.classes < 1 ||
      o.classes > 100000)
    throw Error("network options out of range");
  return o;
}

void save_model_file(const std::string& path, const ModelFile& model) {
  torch::serialize::OutputArchive archive, weights;
  model.network->save(weights);
  const json meta = {{"format", "datanas-model/1"},
                     {"dataset", model.dataset},
                     {"network", network_options_json(model.options)},
                     {"genotype", json::parse(genotype_to_json(model.genotype))}};
  archive.write("meta", c10::IValue(meta.dump()));
  archive.write("weights", weights);
  write_file_atomic_with(path, [&](const std::string& temp) { archive.save_to(temp); });
}

ModelFile load_model_file(const std::string& path) {
  if (!file_exists(path)) throw Error(path + ": no such model file");
  check_zip_file(path);
  ModelFile model;
  json meta;
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
    c10::IValue meta_value;
    archive.read("meta", meta_value);
    meta = json::parse(meta_value.toStringRef());
  } catch (const std::exception&) {
    throw Error(path + ": not a datanas model file (expected one written by datanas train)");
  }
  try {
    if (meta.at("format") != "datanas-model/1") throw Error("format");
    model.dataset = meta.at("dataset").get<std::string>();
    model.options = network_options_from(meta.at("network"));
  } catch (const std::exception&) {
    throw Error(path + ": model metadata is malformed (expected datanas-model/1)");
  }
  model.genotype = genotype_from_json(meta.value("genotype", json()).dump(), path);
  model.network = Network(model.genotype, model.options);
  try {
    torch::serialize::InputArchive weights;
    archive.read("weights", weights);
    model.network->load(weights);
  } catch (const c10::Error&) {
    throw Error(path + ": weights are truncated or do not match the stored network");
  }
  return model;
}

}  // namespace datanas
