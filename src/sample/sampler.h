// The sampler interface: how architecture parameters (alpha, one edges x ops table per cell
// type) become the CellWeights a forward pass uses, and how a genotype is derived from them.
// EGS, GDAS and DARTS all implement it, so they run in the same search harness.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "space/cell_space.h"
#include "space/cell_weights.h"
#include "space/genotype.h"

namespace datanas {

enum class Granularity { kEdge, kNode };
enum class Parametrisation { kSoftmax, kRelu };

struct SamplerOptions {
  std::string name = "egs";  // egs | gdas | darts
  int M = 4;
  Granularity granularity = Granularity::kNode;
  Parametrisation parametrisation = Parametrisation::kSoftmax;
  bool plain_sum = false;  // op weights b (the paper's formula) instead of b / sum(b)
  double tau_max = 5.0, tau_min = 1.0;
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  const SamplerOptions& options() const { return options_; }
  const CellSpace& space() const { return space_; }

  // Initial alpha table of one cell type (edges x ops), drawn from `generator`.
  virtual at::Tensor initial_alpha(at::Generator& generator) const;
  // Probabilities of the table, normalised per decision group; differentiable in alpha.
  virtual at::Tensor probabilities(const at::Tensor& alpha) const;
  // One architecture for one forward pass; weights carry gradients back to alpha.
  virtual CellWeights sample(const at::Tensor& alpha, at::Generator& generator) const = 0;
  // The derived discrete cell from a probability table (as `probabilities` returns).
  virtual std::vector<GenotypeNode> derive(const at::Tensor& probs) const = 0;
  // Weights that evaluate a derived cell inside the supernet, normalised like sample().
  virtual CellWeights fixed(const std::vector<GenotypeNode>& cell) const;

  // A decision group: the flat (edge * ops + op) entries [start, start + size) sampled together.
  // Edge granularity has one group per edge, node granularity one per node (its edges are
  // consecutive rows of the table).
  struct Group {
    int64_t start, size;
  };
  const std::vector<Group>& groups() const { return groups_; }
  // Applies `fn` to each group's slice of the flat table and concatenates the results.
  at::Tensor per_group(const at::Tensor& table,
                       const std::function<at::Tensor(const at::Tensor&)>& fn) const;

  // Temperature for the search epoch `epoch` of `epochs` (linear from tau_max to tau_min).
  void set_epoch(int epoch, int epochs);
  double temperature() const { return tau_; }

 protected:
  Sampler(SamplerOptions options, CellSpace space);
  // Normalises a binary code per group (or not, for plain_sum) into forward op weights.
  at::Tensor weights_from_code(const at::Tensor& code) const;

  SamplerOptions options_;
  CellSpace space_;
  std::vector<Group> groups_;
  double tau_ = 1.0;
};

// Builds the sampler named by options.name; throws Error for an unknown name or bad M.
std::unique_ptr<Sampler> make_sampler(const SamplerOptions& options, const CellSpace& space);

// The derived genotype of both cell types; the cell output concatenates the last `multiplier`
// nodes.
Genotype derive_genotype(const Sampler& sampler, const at::Tensor& probs_normal,
                         const at::Tensor& probs_reduce, int multiplier);

std::string granularity_name(Granularity g);
Granularity parse_granularity(const std::string& text);  // throws Error
std::string parametrisation_name(Parametrisation p);
Parametrisation parse_parametrisation(const std::string& text);  // throws Error

}  // namespace datanas
