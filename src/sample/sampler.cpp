#include "sample/sampler.h"

#include <ATen/ATen.h>

#include "sample/darts.h"
#include "sample/egs.h"
#include "space/ops.h"
#include "util/error.h"

namespace datanas {

Sampler::Sampler(SamplerOptions options, CellSpace space)
    : options_(std::move(options)), space_(space) {
  if (options_.M < 1 || options_.M > 16) throw Error("--M: expected 1..16, got " + std::to_string(options_.M));
  if (options_.tau_min <= 0 || options_.tau_max < options_.tau_min)
    throw Error("--tau-max/--tau-min: expected 0 < tau_min <= tau_max");
  if (options_.granularity == Granularity::kEdge) {
    for (int e = 0; e < space_.edges(); ++e) groups_.push_back({int64_t{e} * space_.ops, space_.ops});
  } else {
    for (int node = 0; node < space_.nodes; ++node)
      groups_.push_back({int64_t{space_.node_first_edge(node)} * space_.ops,
                         int64_t{space_.node_inputs(node)} * space_.ops});
  }
  tau_ = options_.tau_max;
}

at::Tensor Sampler::per_group(const at::Tensor& table,
                             const std::function<at::Tensor(const at::Tensor&)>& fn) const {
  at::Tensor flat = table.reshape({-1});
  std::vector<at::Tensor> parts;
  for (const Group& g : groups_) parts.push_back(fn(flat.slice(0, g.start, g.start + g.size)));
  return at::cat(parts).view(table.sizes());
}

at::Tensor Sampler::initial_alpha(at::Generator& generator) const {
  at::Tensor noise = at::normal(0.0, 1.0, {space_.edges(), space_.ops}, generator) * 1e-3;
  return options_.parametrisation == Parametrisation::kRelu ? noise + 1.0 : noise;
}

at::Tensor Sampler::probabilities(const at::Tensor& alpha) const {
  if (options_.parametrisation == Parametrisation::kSoftmax)
    return per_group(alpha, [](const at::Tensor& a) { return at::softmax(a, 0); });
  return per_group(alpha, [](const at::Tensor& a) {
    at::Tensor positive = at::relu(a);
    return positive / (positive.sum() + 1e-10);
  });
}

at::Tensor Sampler::weights_from_code(const at::Tensor& code) const {
  if (options_.plain_sum) return code;
  return per_group(code, [](const at::Tensor& b) { return b / b.sum().clamp_min(1e-12); });
}

CellWeights Sampler::fixed(const std::vector<GenotypeNode>& cell) const {
  at::Tensor code = at::zeros({space_.edges(), space_.ops});
  for (size_t node = 0; node < cell.size(); ++node) {
    for (const OpInput& pair : cell[node]) {
      const int op = space_.op_index(pair.op);
      if (op < 0) throw Error("genotype: unknown op '" + pair.op + "'");
      code[space_.node_edge(static_cast<int>(node), pair.input)][op] = 1.0;
    }
  }
  CellWeights result;
  result.weights = weights_from_code(code);
  at::Tensor mask = (code > 0.5).to(at::kByte).contiguous();
  result.selected.assign(mask.data_ptr<uint8_t>(), mask.data_ptr<uint8_t>() + mask.numel());
  return result;
}

void Sampler::set_epoch(int epoch, int epochs) {
  const double progress = epochs > 1 ? static_cast<double>(epoch) / (epochs - 1) : 0.0;
  tau_ = options_.tau_max - (options_.tau_max - options_.tau_min) * std::min(1.0, progress);
}

std::unique_ptr<Sampler> make_sampler(const SamplerOptions& options, const CellSpace& space) {
  if (options.name == "egs") return std::make_unique<EgsSampler>(options, space);
  if (options.name == "gdas") {
    SamplerOptions single = options;
    single.M = 1;
    return std::make_unique<EgsSampler>(single, space);
  }
  if (options.name == "darts") return std::make_unique<DartsSampler>(options, space);
  throw Error("--sampler: expected egs, gdas or darts, got '" + options.name + "'");
}

Genotype derive_genotype(const Sampler& sampler, const at::Tensor& probs_normal,
                         const at::Tensor& probs_reduce, int multiplier) {
  Genotype genotype;
  genotype.normal = sampler.derive(probs_normal);
  genotype.reduce = sampler.derive(probs_reduce);
  const int nodes = sampler.space().nodes;
  for (int i = 2 + nodes - multiplier; i < 2 + nodes; ++i) {
    genotype.normal_concat.push_back(i);
    genotype.reduce_concat.push_back(i);
  }
  return genotype;
}

std::string granularity_name(Granularity g) { return g == Granularity::kEdge ? "edge" : "node"; }

Granularity parse_granularity(const std::string& text) {
  if (text == "edge") return Granularity::kEdge;
  if (text == "node") return Granularity::kNode;
  throw Error("--granularity: expected edge or node, got '" + text + "'");
}

std::string parametrisation_name(Parametrisation p) {
  return p == Parametrisation::kSoftmax ? "softmax" : "relu";
}

Parametrisation parse_parametrisation(const std::string& text) {
  if (text == "softmax") return Parametrisation::kSoftmax;
  if (text == "relu") return Parametrisation::kRelu;
  throw Error("--parametrisation: expected softmax or relu, got '" + text + "'");
}

}  // namespace datanas
