#include "search/random_architecture.h"

#include <ATen/ATen.h>

#include "sample/sampler.h"
#include "space/ops.h"

namespace datanas {

Genotype random_genotype(int M, uint64_t seed, int nodes) {
  SamplerOptions options;
  options.name = "egs";
  options.M = M;
  options.granularity = Granularity::kNode;
  auto sampler = make_sampler(options, CellSpace{nodes, 8});
  const CellSpace space = sampler->space();
  at::Generator generator = at::detail::createCPUGenerator(seed);
  const at::Tensor uniform = at::zeros({space.edges(), space.ops});
  auto draw_cell = [&]() {
    const CellWeights code = sampler->sample(uniform, generator);
    std::vector<GenotypeNode> cell(nodes);
    for (int node = 0; node < nodes; ++node) {
      for (int input = 0; input < CellSpace::inputs(node); ++input)
        for (int op = 0; op < space.ops; ++op)
          if (op != kNoneOp && code.is_selected(CellSpace::edge(node, input), op, space.ops))
            cell[node].push_back({cnn_op_names()[op], input});
      if (cell[node].empty()) {  // every draw hit `none`: any non-none pair, uniformly
        const int64_t pick =
            at::randint(CellSpace::inputs(node) * (space.ops - 1), {1}, generator).item<int64_t>();
        cell[node].push_back({cnn_op_names()[1 + pick % (space.ops - 1)],
                              static_cast<int>(pick / (space.ops - 1))});
      }
    }
    return cell;
  };
  Genotype genotype;
  genotype.normal = draw_cell();
  genotype.reduce = draw_cell();
  for (int i = 2; i < 2 + nodes; ++i) {
    genotype.normal_concat.push_back(i);
    genotype.reduce_concat.push_back(i);
  }
  return genotype;
}

}  // namespace datanas
