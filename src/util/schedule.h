// Learning-rate schedule shared by search and retraining: cosine annealing per epoch from `lr`
// at epoch 0 towards `lr_min` at epoch `epochs`, applied to every parameter group of an SGD.
#pragma once
#include <cmath>

#include <torch/optim/sgd.h>

namespace datanas {

inline double cosine_annealing(double lr, double lr_min, int epoch, int epochs) {
  return lr_min + (lr - lr_min) * (1.0 + std::cos(M_PI * epoch / epochs)) / 2.0;
}

inline void set_learning_rate(torch::optim::SGD& optimizer, double lr) {
  for (auto& group : optimizer.param_groups())
    static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
}

}  // namespace datanas
