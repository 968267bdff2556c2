#include <ATen/ATen.h>

#include <cstdio>

#include "commands.h"
#include "search/run_files.h"
#include "search/search_options.h"
#include "util/error.h"

namespace datanas::cli {

Command add_derive(CLI::App& app) {
  auto from = std::make_shared<std::string>();
  auto M = std::make_shared<int>(0);
  auto out = std::make_shared<std::string>();
  app.add_option("--from", *from, "run folder of a search (config.json + alphas.json)")->required();
  app.add_option("--M", *M, "EGS draws to derive for (default: the run's M)");
  app.add_option("--out", *out, "also write the genotype to this JSON file");
  return [=]() {
    const std::string config_path = run_file(*from, "config.json");
    const std::string alphas_path = run_file(*from, "alphas.json");
    SearchOptions options = search_options_from_json(read_json_file(config_path), config_path);
    if (*M > 0) options.sampler.M = *M;
    const bool lm = options.task == "lm";
    auto sampler = make_sampler(options.sampler, lm ? rnn_cell_space(options.net.nodes)
                                                    : cnn_cell_space(options.net.nodes));
    const nlohmann::json alphas = read_json_file(alphas_path);
    auto table = [&](const char* cell) {
      if (!alphas.contains(cell) || !alphas[cell].contains("probs"))
        throw Error(alphas_path + ": missing " + cell + ".probs");
      at::Tensor probs = tensor_from_json(alphas[cell]["probs"], alphas_path);
      if (probs.size(0) != sampler->space().edges() || probs.size(1) != sampler->space().ops)
        throw Error(alphas_path + ": " + cell + ".probs has the wrong shape for the run's cell");
      return probs;
    };
    Genotype genotype;
    if (lm) {
      genotype.space = "darts-rnn";
      genotype.recurrent = sampler->derive(table("recurrent"));
      for (int i = 1; i <= options.net.nodes; ++i) genotype.concat.push_back(i);
    } else {
      genotype = derive_genotype(*sampler, table("normal"), table("reduce"), options.net.multiplier);
    }
    if (!out->empty()) save_genotype(*out, genotype);
    std::printf("%s\n", genotype_to_json(genotype).c_str());
    return 0;
  };
}

}  // namespace datanas::cli
