#include "kernels/batch_norm_math.h"

#include <ATen/ATen.h>

#include <cmath>

namespace datanas {
namespace kernels {

BatchMoments affine_from_moments(const at::Tensor& mean, const at::Tensor& var, int64_t M,
                                 const at::Tensor& weight, const at::Tensor& bias,
                                 const at::Tensor& running_mean, const at::Tensor& running_var,
                                 double momentum, double eps, at::Tensor& scale,
                                 at::Tensor& offset) {
  const int64_t C = mean.numel();
  at::Tensor invstd = at::empty({C}, mean.options());
  scale = at::empty({C}, mean.options());
  offset = at::empty({C}, mean.options());
  at::Tensor w = present(weight) ? weight.to(at::kDouble).contiguous() : at::Tensor();
  at::Tensor b = present(bias) ? bias.to(at::kDouble).contiguous() : at::Tensor();
  for (int64_t c = 0; c < C; ++c) {
    const double m = mean.data_ptr<double>()[c];
    const double is = 1.0 / std::sqrt(var.data_ptr<double>()[c] + eps);
    const double s = is * (w.defined() ? w.data_ptr<double>()[c] : 1.0);
    invstd.data_ptr<double>()[c] = is;
    scale.data_ptr<double>()[c] = s;
    offset.data_ptr<double>()[c] = (b.defined() ? b.data_ptr<double>()[c] : 0.0) - m * s;
  }
  if (present(running_mean)) {
    running_mean.mul_(1.0 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
  }
  if (present(running_var)) {
    const double unbias = static_cast<double>(M) / static_cast<double>(M - 1);
    running_var.mul_(1.0 - momentum).add_(var.to(running_var.scalar_type()), momentum * unbias);
  }
  return {mean, invstd};
}

NormalizeBackwardMap normalize_backward_map(const std::vector<double>& sum_g,
                                            const std::vector<double>& sum_g_centered,
                                            const at::Tensor& weight, const double* mean,
                                            const double* invstd, double M) {
  const size_t C = sum_g.size();
  const at::Tensor w = present(weight) ? weight.to(at::kDouble).contiguous() : at::Tensor();
  NormalizeBackwardMap map{std::vector<double>(C), std::vector<double>(C), std::vector<double>(C),
                           std::vector<double>(C), std::vector<double>(C)};
  for (size_t c = 0; c < C; ++c) {
    const double g = w.defined() ? w.data_ptr<double>()[c] : 1.0;
    const double is = invstd[c];
    map.a[c] = g * is;
    map.b[c] = -g * is * is * is * sum_g_centered[c] / M;
    map.c0[c] = -g * is * sum_g[c] / M - map.b[c] * mean[c];
    map.grad_weight[c] = is * sum_g_centered[c];
    map.grad_bias[c] = sum_g[c];
  }
  return map;
}

}  // namespace kernels
}  // namespace datanas
