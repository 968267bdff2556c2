#include "space/ops.h"

#include <torch/nn/functional/padding.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>

#include "space/op_blocks.h"
#include "util/error.h"

namespace datanas {
namespace nn = torch::nn;

torch::nn::AnyModule make_cnn_op(const std::string& name, int64_t C, int64_t stride, bool affine,
                                 bool pool_bn, KernelBackend kernels) {
  if (name == "none") return nn::AnyModule(Zero(stride));
  if (name == "max_pool_3x3" || name == "avg_pool_3x3")
    return nn::AnyModule(Pool(name == "max_pool_3x3", C, stride, pool_bn, kernels));
  if (name == "skip_connect") {
    if (stride == 1) return nn::AnyModule(Identity());
    return nn::AnyModule(FactorizedReduce(C, C, affine, kernels));
  }
  if (name == "sep_conv_3x3") return nn::AnyModule(SepConv(C, C, 3, stride, 1, affine, kernels));
  if (name == "sep_conv_5x5") return nn::AnyModule(SepConv(C, C, 5, stride, 2, affine, kernels));
  if (name == "dil_conv_3x3") return nn::AnyModule(DilConv(C, C, 3, stride, 2, 2, affine, kernels));
  if (name == "dil_conv_5x5") return nn::AnyModule(DilConv(C, C, 5, stride, 4, 2, affine, kernels));
  throw Error("unknown op '" + name + "'");
}

}  // namespace datanas
