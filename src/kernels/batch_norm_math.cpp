#include "kernels/batch_norm_math.h"

#include <ATen/ATen.h>

#include <cmath>

namespace datanas {
namespace kernels {

namespace {

template <typename T>
void update_running_typed(T* r, const double* batch, int64_t C, double momentum, double scale) {
  for (int64_t c = 0; c < C; ++c)
    r[c] =
        static_cast<T>((1.0 - momentum) * static_cast<double>(r[c]) + momentum * scale * batch[c]);
}

// running = (1 - momentum) running + momentum * scale * batch (batch: double, C values): a loop
// where running is a CPU tensor (LibTorch's mul_ and add_ cost more than the arithmetic here).
void update_running(const at::Tensor& running, const at::Tensor& batch, double momentum,
                    double scale) {
  const double* v = batch.data_ptr<double>();
  const int64_t C = batch.numel();
  if (running.is_cpu() && running.is_contiguous() && running.scalar_type() == at::kFloat) {
    update_running_typed(running.data_ptr<float>(), v, C, momentum, scale);
  } else if (running.is_cpu() && running.is_contiguous() && running.scalar_type() == at::kDouble) {
    update_running_typed(running.data_ptr<double>(), v, C, momentum, scale);
  } else {
    running.mul_(1.0 - momentum).add_(batch.to(running.scalar_type()), momentum * scale);
  }
}

}  // namespace

BatchMoments affine_from_moments(const at::Tensor& mean, const at::Tensor& var, int64_t M,
                                 const at::Tensor& weight, const at::Tensor& bias,
                                 const at::Tensor& running_mean, const at::Tensor& running_var,
                                 double momentum, double eps, at::Tensor& scale,
                                 at::Tensor& offset) {
  const int64_t C = mean.numel();
  at::Tensor invstd = at::empty({C}, mean.options());
  scale = at::empty({C}, mean.options());
  offset = at::empty({C}, mean.options());
  const std::vector<double> w = present(weight) ? values_of<double>(weight) : std::vector<double>();
  const std::vector<double> b = present(bias) ? values_of<double>(bias) : std::vector<double>();
  for (int64_t c = 0; c < C; ++c) {
    const double m = mean.data_ptr<double>()[c];
    const double is = 1.0 / std::sqrt(var.data_ptr<double>()[c] + eps);
    const double s = is * (w.empty() ? 1.0 : w[c]);
    invstd.data_ptr<double>()[c] = is;
    scale.data_ptr<double>()[c] = s;
    offset.data_ptr<double>()[c] = (b.empty() ? 0.0 : b[c]) - m * s;
  }
  if (present(running_mean)) update_running(running_mean, mean, momentum, 1.0);
  if (present(running_var)) {
    const double unbias = static_cast<double>(M) / static_cast<double>(M - 1);
    update_running(running_var, var, momentum, unbias);
  }
  return {mean, invstd};
}

NormalizeBackwardMap normalize_backward_map(const std::vector<double>& sum_g,
                                            const std::vector<double>& sum_g_centered,
                                            const at::Tensor& weight, const double* mean,
                                            const double* invstd, double M) {
  const size_t C = sum_g.size();
  const std::vector<double> w = present(weight) ? values_of<double>(weight) : std::vector<double>();
  NormalizeBackwardMap map{std::vector<double>(C), std::vector<double>(C), std::vector<double>(C),
                           std::vector<double>(C), std::vector<double>(C)};
  for (size_t c = 0; c < C; ++c) {
    const double g = w.empty() ? 1.0 : w[c];
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
