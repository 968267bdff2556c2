#include "nets/supernet.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <utility>

#include "kernels/channel_parts.h"
#include "kernels/kernel_backend.h"
#include "util/error.h"
#include "util/memory_format.h"

namespace datanas {
namespace nn = torch::nn;

bool is_reduction_layer(int layer, int layers) {
  return layer == layers / 3 || layer == 2 * layers / 3;
}

SupernetImpl::SupernetImpl(const SupernetOptions& o) : options_(o) {
  if (o.input_channels < 1) throw Error("supernet: input channels must be >= 1");
  if (o.init_channels < 2) throw Error("--init-channels: expected >= 2");
  if (o.layers < 3) throw Error("--layers: expected >= 3 (two reduction cells and a normal one)");
  if (o.nodes < 1 || o.multiplier < 1 || o.multiplier > o.nodes)
    throw Error("supernet: multiplier must be in 1..nodes");
  const int64_t stem_channels = o.stem_multiplier * o.init_channels;
  stem_conv_ = register_module(
      "stem_conv",
      nn::Conv2d(nn::Conv2dOptions(o.input_channels, stem_channels, 3).padding(1).bias(false)));
  stem_bn_ = register_module("stem_bn", nn::BatchNorm2d(stem_channels));

  int64_t prev_prev = stem_channels, prev = stem_channels, channels = o.init_channels;
  bool reduction_prev = false;
  for (int layer = 0; layer < o.layers; ++layer) {
    const bool reduction = is_reduction_layer(layer, o.layers);
    if (reduction) channels *= 2;
    SearchCellOptions cell;
    cell.space = CellSpace{o.nodes, 8};
    cell.channels_prev_prev = prev_prev;
    cell.channels_prev = prev;
    cell.channels = channels;
    cell.multiplier = o.multiplier;
    cell.reduction = reduction;
    cell.reduction_prev = reduction_prev;
    cell.kernels = o.kernels;
    cells_.push_back(register_module("cell" + std::to_string(layer), SearchCell(cell)));
    reduction_prev = reduction;
    prev_prev = prev;
    prev = o.multiplier * channels;
  }
  classifier_ = register_module("classifier", nn::Linear(prev, o.classes));
  set_memory_format(*this, o.channels_last);
}

at::Tensor SupernetImpl::stem(const at::Tensor& images) {
  // The conv's output in the layout too: a 1-channel image (and the stem's 1-channel weight) is
  // NCHW and channels-last at once, and LibTorch's conv then returns NCHW.
  const bool channels_last = options_.channels_last;
  return stem_bn_(
      in_memory_format(stem_conv_(in_memory_format(images, channels_last)), channels_last));
}

// Cell i reads the outputs of cells i - 2 and i - 1, the stem's where there is none: the stem
// is read by three preprocessings (both of cell 0, the first of cell 1), every other output by
// two. Where they are ReLU -> 1x1 conv -> BN, they run together as soon as the output exists:
// one read of it, and one gradient written for it instead of one per reader and their sum.
// With the native kernels a cell's output stays its nodes' states, its channel parts
// (kernels/channel_parts.h): those preprocessings read the nodes in place and write each node's
// gradient whole, so neither the concatenation nor its gradient's strided slices are made; so
// does a FactorizedReduce, and the pooling takes the parts one by one.
at::Tensor SupernetImpl::forward(const at::Tensor& images, const CellWeights& normal,
                                 const CellWeights& reduce, ExecMode mode) {
  const int layers = static_cast<int>(cells_.size());
  auto source = [](int cell, int input) { return std::max(-1, cell - 2 + input); };  // -1: stem
  std::vector<std::array<at::Tensor, 2>> preprocessed(layers);
  auto preprocess_readers = [&](int state, const std::vector<at::Tensor>& x) {
    std::vector<ReLUConvBNImpl*> blocks;
    std::vector<std::pair<int, int>> readers;
    for (int cell = std::max(0, state + 1); cell < std::min(layers, state + 3); ++cell) {
      for (int input = 0; input < 2; ++input) {
        ReLUConvBNImpl* block = cells_[cell]->pointwise_preprocess(input);
        if (source(cell, input) != state || !block) continue;
        blocks.push_back(block);
        readers.emplace_back(cell, input);
      }
    }
    if (blocks.empty() || (blocks.size() < 2 && x.size() < 2)) return;
    const std::vector<at::Tensor> ys = relu_conv_bn_shared(blocks, x);
    for (size_t j = 0; j < ys.size(); ++j)
      preprocessed[readers[j].first][readers[j].second] = ys[j];
  };
  const std::vector<at::Tensor> stem_output = {stem(images)};
  const bool keep_parts = use_native_kernels(options_.kernels, stem_output[0]);
  preprocess_readers(-1, stem_output);
  std::vector<std::vector<at::Tensor>> outputs;
  for (int i = 0; i < layers; ++i) {
    SearchCellImpl& cell = *cells_[i];
    std::array<at::Tensor, 2>& p = preprocessed[i];
    for (int input = 0; input < 2; ++input) {
      const int from = source(i, input);
      if (!p[input].defined())
        p[input] = cell.preprocess(input, from < 0 ? stem_output : outputs[from]);
    }
    std::vector<at::Tensor> parts =
        cell.output_parts(p[0], p[1], cell.reduction() ? reduce : normal, mode);
    outputs.push_back(keep_parts ? std::move(parts) : std::vector<at::Tensor>{at::cat(parts, 1)});
    p = {};
    preprocess_readers(i, outputs.back());
    if (i >= 2) outputs[i - 2].clear();  // no later cell reads it
  }
  // A channel's average reads that channel alone: the parts are pooled one by one.
  std::vector<at::Tensor> pooled;
  for (const at::Tensor& part : outputs.back())
    pooled.push_back(at::adaptive_avg_pool2d(part, {1, 1}).flatten(1));
  return classifier_(kernels::joined_channels(pooled));
}

}  // namespace datanas
