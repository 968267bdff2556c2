// The DARTS CNN op registry: the eight candidate operations of an edge.
#pragma once
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include "kernels/kernel_backend.h"

namespace datanas {

// Order matters: alpha columns follow it, and index 0 is `none`.
const std::vector<std::string>& cnn_op_names();
int cnn_op_index(const std::string& name);  // -1 when unknown
constexpr int kNoneOp = 0;

// Builds op `name` with C channels in and out. `affine` selects BatchNorm affine parameters
// (false in the supernet); `pool_bn` adds BN after pools (supernet only). `kernels` picks who
// computes the convs, pools and BNs; parameters and results are the same either way.
torch::nn::AnyModule make_cnn_op(const std::string& name, int64_t channels, int64_t stride,
                                 bool affine, bool pool_bn,
                                 KernelBackend kernels = KernelBackend::kTorch);

}  // namespace datanas
