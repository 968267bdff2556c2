#include <memory>

#include "fuzz_inputs.h"
#include "sample/sampler.h"
#include "scratch.h"
#include "search/search_state.h"
#include "space/genotype.h"
#include "train/model_file.h"
#include "util/files.h"

namespace datanas::fuzz {
namespace {

SearchOptions fuzz_search_options() {
  SearchOptions o;
  o.net.init_channels = 2;
  o.net.layers = 3;
  o.net.nodes = 1;
  o.net.multiplier = 1;
  o.net.stem_multiplier = 1;
  return o;
}

struct FuzzSearch {
  SearchOptions options = fuzz_search_options();
  std::unique_ptr<Sampler> sampler = make_sampler(options.sampler, CellSpace{options.net.nodes, 8});
  SearchState state = make_search_state(options, *sampler, at::kCPU);
};

FuzzSearch& fuzz_search() {
  static FuzzSearch search;
  return search;
}

}  // namespace

bool checkpoint_input(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  const bool model = data[0] & 1;
  const ScratchFile file(model ? "model.pt" : "search.pt",
                         std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  return accepted([&] {
    if (model) {
      load_model_file(file.path());
    } else {
      load_search_checkpoint(file.path(), fuzz_search().state);
    }
  });
}

void write_checkpoint_seeds(const std::string& dir) {
  make_directories(dir);
  auto prefixed = [&](const std::string& name, char selector, const std::string& source) {
    write_file_atomic((fs::path(dir) / name).string(), selector + read_text_file(source));
    std::remove(source.c_str());
  };
  const std::string search = (fs::path(dir) / "search.tmp.pt").string();
  save_search_checkpoint(search, fuzz_search().state);
  prefixed("search.pt", '\0', search);
  NetworkOptions net;
  net.init_channels = 2;
  net.layers = 3;
  const Genotype genotype = builtin_genotypes().at("DARTS_V2");
  const std::string model = (fs::path(dir) / "model.tmp.pt").string();
  save_model_file(model, {genotype, net, "fashion-mnist", Network(genotype, net)});
  prefixed("model.pt", '\1', model);
}

}  // namespace datanas::fuzz
