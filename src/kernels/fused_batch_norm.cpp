#include "kernels/fused_batch_norm.h"

#include <ATen/ATen.h>

#include <vector>

#include "kernels/batch_norm_passes.h"
#include "util/error.h"

namespace datanas {
namespace kernels {

void check_batch_norm_args(const BatchNormArgs& bn, int64_t channels, int64_t count,
                           const std::string& what) {
  for (const at::Tensor* t : {&bn.weight, &bn.bias, &bn.running_mean, &bn.running_var})
    if (present(*t) && t->numel() != channels)
      throw Error(what + ": expected batch-norm tensors of one value per channel");
  if (count < 2) throw Error(what + ": expected more than one value per channel in training");
}

at::Tensor normalize_with_moments(at::Tensor& z, const at::Tensor& mean, const at::Tensor& var,
                                  const BatchNormArgs& bn, bool keep_z, BatchMoments* moments) {
  at::Tensor scale, offset;
  const BatchMoments m =
      affine_from_moments(mean, var, z.numel() / z.size(1), bn.weight, bn.bias, bn.running_mean,
                          bn.running_var, bn.momentum, bn.eps, scale, offset);
  if (moments) *moments = m;
  at::Tensor y = keep_z ? at::empty_like(z) : z;
  if (z.scalar_type() == at::kFloat) {
    apply_scale_shift<float>(z, y, values_of<float>(scale), values_of<float>(offset));
  } else {
    apply_scale_shift<double>(z, y, values_of<double>(scale), values_of<double>(offset));
  }
  return y;
}

NormalizeBackwardMap batch_norm_backward_map(const at::Tensor& z, const at::Tensor& gy,
                                             const BatchMoments& moments,
                                             const at::Tensor& weight) {
  const ChannelSums sums =
      z.scalar_type() == at::kFloat
          ? channel_grad_moments<float>(z, gy, values_of<float>(moments.mean))
          : channel_grad_moments<double>(z, gy, values_of<double>(moments.mean));
  return normalize_backward_map(sums.first, sums.second, weight, moments.mean.data_ptr<double>(),
                                moments.invstd.data_ptr<double>(),
                                static_cast<double>(z.numel() / z.size(1)));
}

at::Tensor weight_grad_of(const NormalizeBackwardMap& map, const at::Tensor& weight) {
  if (!present(weight)) return at::Tensor();
  return at::tensor(map.grad_weight, weight.options().dtype(at::kDouble)).to(weight.scalar_type());
}

at::Tensor bias_grad_of(const NormalizeBackwardMap& map, bool has_bias, at::ScalarType dtype) {
  if (!has_bias) return at::Tensor();
  return at::tensor(map.grad_bias, at::TensorOptions().dtype(at::kDouble)).to(dtype);
}

}  // namespace kernels
}  // namespace datanas
