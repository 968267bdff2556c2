// Gradient clipping and the SGD step over all of a network's parameters as parallel passes over
// flat chunks. LibTorch runs a handful of small ops per parameter (the cifar supernet has 1,399
// parameter tensors: about 30 ms of dispatch a weight step for a few MB of arithmetic).
#pragma once
#include <torch/optim/sgd.h>

#include <vector>

#include "kernels/kernel_backend.h"

namespace datanas {

// torch::nn::utils::clip_grad_norm_(params, max_norm): the 2-norm of all defined gradients
// together (returned), and every gradient scaled by min(1, max_norm / (norm + 1e-6)). Native
// when every gradient is a dense float or double CPU tensor (the sum of squares in double, in a
// fixed chunk order whatever the thread count); LibTorch's otherwise.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm,
                      KernelBackend backend);

// optimizer.step() for LibTorch 1.13's SGD (weight decay, momentum, dampening, Nesterov), kept
// in the optimizer's own momentum buffers so that save/load and a later LibTorch step see the
// same state; in float the same numbers as LibTorch's step, bit for bit. Native when every
// parameter with a gradient is a dense float or double CPU tensor whose gradient and buffer
// share its strides; LibTorch's step otherwise.
void sgd_step(torch::optim::SGD& optimizer, KernelBackend backend);

}  // namespace datanas
