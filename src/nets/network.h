// The evaluation networks built from a derived genotype, following DARTS' NetworkCIFAR and
// NetworkImageNet (model.py): a stem, `layers` discrete cells with reductions at layers/3 and
// 2*layers/3 (each doubling the channels), an optional auxiliary head after cell 2*layers/3
// (training only), global average pooling and a linear classifier.
//
// kind "cifar": stem conv3x3 (input_channels -> 3C) + BN; inputs 3x32x32 or 1x28x28 (any size
//   the cells can halve twice works).
// kind "imagenet": stem0 conv3x3/2 (-> C/2), BN, ReLU, conv3x3/2 (-> C), BN; stem1 ReLU,
//   conv3x3/2, BN; the first cell sees a reduced c_{k-2}; 224x224 inputs.
// Global pooling is adaptive (DARTS' AvgPool2d(7) on ImageNet's 7x7 maps is the same thing).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <string>
#include <vector>

#include "nets/discrete_cell.h"
#include "space/genotype.h"

namespace datanas {

struct NetworkOptions {
  std::string kind = "cifar";  // "cifar" or "imagenet"
  int64_t input_channels = 3;
  int64_t init_channels = 36;
  int layers = 20;
  int classes = 10;
  bool auxiliary = false;
  double drop_path = 0.0;     // drop probability per op output, training mode only
  bool supernet_ops = false;  // see DiscreteCellOptions::supernet_ops
  bool channels_last = true;  // NHWC tensors (see channels_last_for in kernels/kernel_backend.h)
  KernelBackend kernels = KernelBackend::kNative;  // the faster one on CPU (README)
};

// Throws Error when an option is out of range (unknown kind, non-positive sizes, drop_path
// outside [0, 1)).
void validate_network_options(const NetworkOptions& options);

// DARTS' auxiliary heads: ReLU, AvgPool(5, stride, no padding, padding not counted), conv1x1
// -> 128, BN, ReLU, conv2x2 -> 768, [BN,] ReLU, Linear(768, classes). CIFAR: stride 3, with the
// BN; ImageNet: stride 2, without it (as DARTS trained it). The head needs a 2x2 map after the
// pool; DARTS assumes 8x8 (CIFAR) or 7x7 (ImageNet) inputs. For any other size (e.g. 7x7 from
// 28x28 Fashion-MNIST images, where the pool would give 1x1) an adaptive average pool to 2x2
// replaces the fixed pool. Parameters do not depend on the input size.
class AuxiliaryHeadImpl : public torch::nn::Module {
 public:
  AuxiliaryHeadImpl(int64_t channels, int classes, int64_t pool_stride, bool second_bn);
  at::Tensor forward(const at::Tensor& x, MacCounter* counter = nullptr);

 private:
  int64_t pool_stride_;
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr};
  torch::nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr};
  torch::nn::Linear classifier_{nullptr};
};
TORCH_MODULE(AuxiliaryHead);

struct NetworkOutput {
  at::Tensor logits;
  at::Tensor aux_logits;  // undefined when the head is off or in eval mode
};

class NetworkImpl : public torch::nn::Module {
 public:
  // Validates the genotype and the options (Error on failure).
  NetworkImpl(const Genotype& genotype, const NetworkOptions& options);
  NetworkOutput forward(const at::Tensor& images);
  // The same forward, adding multiply-adds to `counter` (may be null) and, when `cell_macs` is
  // given, each cell's share to it (one entry per cell). The auxiliary head's multiply-adds
  // are counted only if it runs (training mode).
  NetworkOutput forward_counted(const at::Tensor& images, MacCounter* counter,
                                std::vector<int64_t>* cell_macs = nullptr);

  void set_drop_path(double drop_prob);
  double drop_path() const { return options_.drop_path; }
  const NetworkOptions& options() const { return options_; }
  const std::vector<DiscreteCell>& cells() const { return cells_; }
  // Null when options.auxiliary is false.
  const AuxiliaryHead& auxiliary_head() const { return auxiliary_head_; }
  int auxiliary_layer() const { return 2 * options_.layers / 3; }

  // The stem's output (the first cell's s1; *s0 its s0), in options().channels_last's layout
  // whatever the images' channel count; counter (may be null) gains its MACs.
  at::Tensor stem(const at::Tensor& images, at::Tensor* s0, MacCounter* counter);

 private:
  NetworkOptions options_;
  // cifar: stem_conv0_ + stem_bn0_. imagenet: stem0 = conv0, bn0, ReLU, conv1, bn1;
  // stem1 = ReLU, conv2, bn2.
  torch::nn::Conv2d stem_conv0_{nullptr}, stem_conv1_{nullptr}, stem_conv2_{nullptr};
  torch::nn::BatchNorm2d stem_bn0_{nullptr}, stem_bn1_{nullptr}, stem_bn2_{nullptr};
  std::vector<DiscreteCell> cells_;
  AuxiliaryHead auxiliary_head_{nullptr};
  torch::nn::Linear classifier_{nullptr};
};
TORCH_MODULE(Network);

int64_t count_parameters(const torch::nn::Module& module);
// All parameters except the auxiliary head's (the number papers report).
int64_t count_parameters_without_auxiliary(const NetworkImpl& network);

}  // namespace datanas
