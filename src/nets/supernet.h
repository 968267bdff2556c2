// The DARTS search network: stem, a stack of search cells (reductions at 1/3 and 2/3 of the
// depth), global pooling and a linear classifier. Normal cells share one CellWeights, reduction
// cells another.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <vector>

#include "nets/search_cell.h"

namespace datanas {

struct SupernetOptions {
  int64_t input_channels = 1;
  int64_t init_channels = 8;
  int layers = 5;
  int nodes = 4;
  int multiplier = 4;
  int stem_multiplier = 3;
  int classes = 10;
  bool channels_last = true;  // NHWC tensors (see channels_last_for in kernels/kernel_backend.h)
  KernelBackend kernels = KernelBackend::kNative;  // the faster one on CPU (README)
};

class SupernetImpl : public torch::nn::Module {
 public:
  explicit SupernetImpl(const SupernetOptions& options);
  at::Tensor forward(const at::Tensor& images, const CellWeights& normal, const CellWeights& reduce,
                     ExecMode mode);
  // The stem's output, the first cell's inputs: in options().channels_last's layout whatever
  // the images' channel count.
  at::Tensor stem(const at::Tensor& images);
  const SupernetOptions& options() const { return options_; }
  const std::vector<SearchCell>& cells() const { return cells_; }
  CellSpace space() const { return CellSpace{options_.nodes, 8}; }

 private:
  SupernetOptions options_;
  torch::nn::Conv2d stem_conv_{nullptr};
  torch::nn::BatchNorm2d stem_bn_{nullptr};
  std::vector<SearchCell> cells_;
  torch::nn::Linear classifier_{nullptr};
};
TORCH_MODULE(Supernet);

// Layers whose cell is a reduction cell: layers/3 and 2*layers/3.
bool is_reduction_layer(int layer, int layers);

}  // namespace datanas
