// The building blocks behind the op registry (DARTS operations.py in C++ frontend style).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include <optional>
#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/dw_pw_bn.h"
#include "kernels/fused_batch_norm.h"
#include "kernels/kernel_backend.h"
#include "kernels/pointwise_conv_bn.h"

namespace datanas {

// Every block takes the kernel backend last (default LibTorch): kNative runs the depthwise and
// pointwise convs, pools and batch norms of CPU float/double inputs (and FactorizedReduce's convs
// of channels-last ones) on src/kernels/, with the same parameters.

// ReLU -> conv(k, stride) -> BN. Used to preprocess cell inputs.
class ReLUConvBNImpl : public torch::nn::Module {
 public:
  ReLUConvBNImpl(int64_t c_in, int64_t c_out, int64_t kernel, int64_t stride, int64_t padding,
                 bool affine, KernelBackend kernels = KernelBackend::kTorch);
  at::Tensor forward(const at::Tensor& x);
  // Its conv and batch norm as a head of pointwise_conv_batch_norms, where forward(x) runs the
  // native pointwise kernel (a 1x1 conv of stride 1); none otherwise.
  std::optional<PointwiseHead> pointwise_head(const at::Tensor& x);

 private:
  KernelBackend kernels_;
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(ReLUConvBN);

// forward(x) of every block on one x given as its channel parts (kernels/channel_parts.h); those
// with a pointwise head read the parts in one fused pass (and write their gradients once), the
// others take them joined.
std::vector<at::Tensor> relu_conv_bn_shared(const std::vector<ReLUConvBNImpl*>& blocks,
                                            const std::vector<at::Tensor>& parts);

// A block output whose batch norm is known but not yet applied: the output is
// z * affine.scale[c] + affine.offset[c].
struct PendingBatchNorm {
  at::Tensor z;
  ChannelAffine affine;
};

// ReLU -> depthwise conv(k, stride, dilation) -> pointwise conv -> BN. Natively the ReLU is
// fused into the depthwise conv (no ReLU output is stored or read again), and without autograd
// the whole block up to the BN is one pass (kernels/dw_pw_block.h).
class DilConvImpl : public torch::nn::Module {
 public:
  DilConvImpl(int64_t c_in, int64_t c_out, int64_t kernel, int64_t stride, int64_t padding,
              int64_t dilation, bool affine, KernelBackend kernels = KernelBackend::kTorch);
  at::Tensor forward(const at::Tensor& x);

  // Whether forward_pending takes x: native kernels, autograd off, channels-last CPU input, and
  // a batch norm that uses batch statistics.
  bool can_fuse(const at::Tensor& x);
  // The block on relu(input_affine(x)) (null: relu(x)) with its batch norm pending; bn's running
  // statistics are updated as forward() would.
  PendingBatchNorm forward_pending(const at::Tensor& x, const ChannelAffine* input_affine);
  // <grad, forward(x)> (or of the block on relu(input_affine(x))) where can_fuse(x), without
  // ever storing forward(x); bn's running statistics are updated as forward() would.
  double measure(const at::Tensor& x, const at::Tensor& grad) {
    return measure_pending(x, nullptr, grad);
  }
  double measure_pending(const at::Tensor& x, const ChannelAffine* input_affine,
                         const at::Tensor& grad);
  // forward(x) as a term of a supernet node's sum weighed by `weight`: {z, map} where the fused
  // native function takes x (kernels/fused_batch_norm.h), else {forward(x), undefined}. With
  // input_map (the map of the block before, whose batch norm is left to this one), the block
  // on x * input_map[0] + input_map[1]; `links` those of a sep conv's blocks (kernels/dw_pw_bn.h).
  kernels::WeightedOutput forward_weighted(const at::Tensor& x, const kernels::OutputWeight& weight,
                                           const at::Tensor& input_map = {},
                                           const BlockSumsLinks& links = {});

 private:
  int64_t stride_, padding_, dilation_;
  KernelBackend kernels_;
  torch::nn::Conv2d depthwise_{nullptr}, pointwise_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(DilConv);

// Two DilConvs of dilation 1: the first carries the stride, the second keeps the size.
class SepConvImpl : public torch::nn::Module {
 public:
  SepConvImpl(int64_t c_in, int64_t c_out, int64_t kernel, int64_t stride, int64_t padding,
              bool affine, KernelBackend kernels = KernelBackend::kTorch);
  at::Tensor forward(const at::Tensor& x);
  // As DilConv's: both blocks fused, the second one never stores its output.
  bool can_fuse(const at::Tensor& x) { return first_->can_fuse(x) && second_->can_fuse(x); }
  double measure(const at::Tensor& x, const at::Tensor& grad);
  // forward(x) as a term of a supernet node's sum weighed by `weight`: {z, map} where the fused
  // native function takes x (kernels/fused_batch_norm.h), else {forward(x), undefined}; the
  // second block is the weighed one.
  kernels::WeightedOutput forward_weighted(const at::Tensor& x,
                                           const kernels::OutputWeight& weight);

 private:
  // With autograd and the fused native function, the first block's batch norm is left to the
  // second block, which applies it while padding its input: the first block's output is never
  // written, kept or read back; and the second block's backward takes the first's batch-norm
  // gradient sums (kernels/grad_sums_link.h). Else the blocks one after the other.
  kernels::WeightedOutput chained(const at::Tensor& x, const kernels::OutputWeight& weight);

  DilConv first_{nullptr}, second_{nullptr};
};
TORCH_MODULE(SepConv);

// Halves the resolution without losing information: two 1x1 stride-2 convs on pixel grids
// shifted by one, concatenated. Odd sizes are padded so both grids give the same size.
// Natively, in channels-last, the convs read both grids in place (kernels/factorized_reduce.h).
class FactorizedReduceImpl : public torch::nn::Module {
 public:
  FactorizedReduceImpl(int64_t c_in, int64_t c_out, bool affine,
                       KernelBackend kernels = KernelBackend::kTorch);
  at::Tensor forward(const at::Tensor& x);
  // forward of x given as its channel parts (kernels/channel_parts.h): read in place by the native
  // function where it takes them, else joined.
  at::Tensor forward_parts(const std::vector<at::Tensor>& parts);

 private:
  KernelBackend kernels_;
  torch::nn::Conv2d even_{nullptr}, odd_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(FactorizedReduce);

// 3x3 max or average pool (average excludes padding), optionally followed by BN(affine=false).
class PoolImpl : public torch::nn::Module {
 public:
  PoolImpl(bool max, int64_t channels, int64_t stride, bool with_bn,
           KernelBackend kernels = KernelBackend::kTorch);
  at::Tensor forward(const at::Tensor& x);
  // <grad, forward(x)> without storing the output (the fused native pass with its batch norm),
  // running statistics updated as forward(x) would; only where can_measure(x).
  bool can_measure(const at::Tensor& x);
  double measure(const at::Tensor& x, const at::Tensor& grad);
  // forward(x) as a term of a supernet node's sum weighed by `weight`: {z, map} where the fused
  // native function takes x (kernels/fused_batch_norm.h), else {forward(x), undefined}.
  kernels::WeightedOutput forward_weighted(const at::Tensor& x,
                                           const kernels::OutputWeight& weight);

 private:
  bool max_;
  int64_t stride_;
  KernelBackend kernels_;
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(Pool);

class IdentityImpl : public torch::nn::Module {
 public:
  at::Tensor forward(const at::Tensor& x) { return x; }
};
TORCH_MODULE(Identity);

// The `none` op: zeros of the output shape.
class ZeroImpl : public torch::nn::Module {
 public:
  explicit ZeroImpl(int64_t stride) : stride_(stride) {}
  at::Tensor forward(const at::Tensor& x);

 private:
  int64_t stride_;
};
TORCH_MODULE(Zero);

torch::nn::BatchNorm2d make_batch_norm(int64_t channels, bool affine);

}  // namespace datanas
