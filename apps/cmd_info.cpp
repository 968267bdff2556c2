#include <cstdio>

#include "commands.h"
#include "nets/network_info.h"
#include "search/random_architecture.h"
#include "util/error.h"

namespace datanas::cli {

Command add_info(CLI::App& app) {
  auto genotype = std::make_shared<std::string>("DARTS_V2");
  auto options = std::make_shared<NetworkOptions>();
  auto input_size = std::make_shared<int64_t>(0);
  auto as_json = std::make_shared<bool>(false);
  app.add_option("--genotype", *genotype, "genotype JSON file or built-in name")
      ->capture_default_str();
  app.add_option("--network", options->kind, "cifar | imagenet")->capture_default_str();
  app.add_option("--init-channels", options->init_channels, "channels of the first cells")
      ->capture_default_str();
  app.add_option("--layers", options->layers, "cells")->capture_default_str();
  app.add_option("--classes", options->classes, "output classes")->capture_default_str();
  app.add_option("--input-channels", options->input_channels, "image channels")
      ->capture_default_str();
  app.add_option("--input-size", *input_size, "image side (default: 32 cifar, 224 imagenet)");
  app.add_flag("--json", *as_json, "print one JSON object");
  return [=]() {
    const int64_t size = *input_size > 0 ? *input_size : (options->kind == "imagenet" ? 224 : 32);
    const nlohmann::json info = network_info(load_genotype(*genotype), *options, size);
    if (*as_json) {
      std::printf("%s\n", info.dump().c_str());
      return 0;
    }
    std::printf("%s, %s network, C=%lld, %d cells, %d classes, input %lldx%lldx%lld\n",
                genotype->c_str(), options->kind.c_str(),
                static_cast<long long>(options->init_channels), options->layers, options->classes,
                static_cast<long long>(options->input_channels), static_cast<long long>(size),
                static_cast<long long>(size));
    std::printf("params %lld (with auxiliary head %lld), MACs %.1fM\n",
                info["params"].get<long long>(), info["params_auxiliary"].get<long long>(),
                info["macs"].get<double>() / 1e6);
    return 0;
  };
}

Command add_random(CLI::App& app) {
  auto space = std::make_shared<std::string>("darts-cnn");
  auto M = std::make_shared<int>(4);
  auto seed = std::make_shared<uint64_t>(1);
  auto out = std::make_shared<std::string>();
  app.add_option("--space", *space, "cell space")->capture_default_str();
  app.add_option("--M", *M, "EGS draws per node (at most M ops a node)")->capture_default_str();
  app.add_option("--seed", *seed, "random seed")->capture_default_str();
  app.add_option("--out", *out, "also write the genotype to this JSON file");
  return [=]() {
    if (*space != "darts-cnn") throw Error("--space: expected darts-cnn, got '" + *space + "'");
    if (*M < 1) throw Error("--M: expected >= 1");
    const Genotype genotype = random_genotype(*M, *seed);
    if (!out->empty()) save_genotype(*out, genotype);
    std::printf("%s\n", genotype_to_json(genotype).c_str());
    return 0;
  };
}

}  // namespace datanas::cli
