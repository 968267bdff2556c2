// The evaluation (discrete) cell: a derived genotype turned into a fixed network cell, as in
// DARTS' model.py, but a node may sum any number of (op, input) pairs. A node's value is the
// plain sum of its ops' outputs; the cell output concatenates the genotype's concat nodes.
// Ops use affine BatchNorm and no BN after pools. Drop-path (training only) applies to every
// op output except the identity (skip_connect at stride 1).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "kernels/kernel_backend.h"
#include "space/genotype.h"

namespace datanas {

// Collects multiply-adds while one forward runs (see network_info.h). Only convolutions and
// linear layers are counted: a conv costs out_elements * (c_in / groups) * kh * kw, a linear
// layer in * out per sample; BN, ReLU, pooling and additions are not counted.
struct MacCounter {
  int64_t macs = 0;
  // Adds the convs and linears of `block` (and its children), assuming, as holds for every
  // block of this op space (ReLUConvBN, SepConv, DilConv, FactorizedReduce), that each conv
  // inside it produces the spatial size of the block's output `output`. Per sample.
  void add_block(const torch::nn::Module& block, const at::Tensor& output);
  // One conv whose output is `output` (N, C, H, W), per sample.
  void add_conv(const torch::nn::Module& conv, const at::Tensor& output);
};

// Drop-path as in DARTS: each sample's tensor is kept with probability 1 - drop_prob and
// scaled by 1 / (1 - drop_prob), else zeroed. Not in place.
at::Tensor drop_path(const at::Tensor& x, double drop_prob);

struct DiscreteCellOptions {
  int64_t channels_prev_prev = 0, channels_prev = 0, channels = 0;
  bool reduction = false, reduction_prev = false;
  // Ops as the supernet builds them (BN without affine, BN after pools) instead of the
  // evaluation ones: the search benchmark's oracle.
  bool supernet_ops = false;
  KernelBackend kernels = KernelBackend::kTorch;
};

class DiscreteCellImpl : public torch::nn::Module {
 public:
  // `genotype` must be valid (validate_genotype); its normal or reduce cell is used.
  DiscreteCellImpl(const Genotype& genotype, const DiscreteCellOptions& options);
  // `drop_prob` is used only in training mode. `counter` may be null.
  at::Tensor forward(const at::Tensor& s0, const at::Tensor& s1, double drop_prob = 0.0,
                     MacCounter* counter = nullptr);

  bool reduction() const { return options_.reduction; }
  int64_t channels() const { return options_.channels; }  // per node
  // Channels of the output: len(concat) * channels.
  int64_t output_channels() const;

 private:
  struct Op {
    torch::nn::AnyModule module;
    int input = 0;
    bool identity = false;  // no drop-path on it
  };
  DiscreteCellOptions options_;
  std::vector<int> concat_;
  torch::nn::AnyModule preprocess0_, preprocess1_;
  std::vector<std::vector<Op>> nodes_;
};
TORCH_MODULE(DiscreteCell);

}  // namespace datanas
