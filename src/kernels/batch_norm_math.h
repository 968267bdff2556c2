// The per-channel arithmetic of a training-mode batch norm, in double: moments from per-sample
// partial sums, the normalising map and the running statistics, and the map of its backward.
// Shared by the native batch norm and the kernels that fuse one into the op before it.
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <vector>

namespace datanas {
namespace kernels {

// Defined and not empty (LibTorch 1.13's Function::apply cannot pass undefined tensors, so
// absent ones travel empty).
inline bool present(const at::Tensor& t) { return t.defined() && t.numel() > 0; }

// t, or an empty tensor of like's options for an undefined t (LibTorch 1.13's Function::apply
// cannot take undefined tensors, so absent ones travel empty).
inline at::Tensor or_empty(const at::Tensor& t, const at::Tensor& like) {
  return t.defined() ? t : at::empty({0}, like.options());
}

// t's values converted to T. The per-channel vectors of the batch norms (C values, ~1,000 per
// architecture step) are read directly: a LibTorch conversion costs more than the copy.
template <typename T>
std::vector<T> values_of(const at::Tensor& t) {
  if (t.is_cpu() && t.is_contiguous()) {
    if (t.scalar_type() == at::kDouble)
      return std::vector<T>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
    if (t.scalar_type() == at::kFloat)
      return std::vector<T>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  }
  const at::Tensor c = t.to(c10::CppTypeToScalarType<T>::value).contiguous();
  return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}

template <typename T>
std::vector<T> values_of(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

struct BatchMoments {
  at::Tensor mean, invstd;  // double, per channel
};

// The per-channel map y = x * scale + offset of a batch norm with batch mean and (biased)
// variance `var` over M values per channel, in double; updates the running statistics (each may
// be absent) with factor `momentum`, the variance unbiased, as at::batch_norm does.
BatchMoments affine_from_moments(const at::Tensor& mean, const at::Tensor& var, int64_t M,
                                 const at::Tensor& weight, const at::Tensor& bias,
                                 const at::Tensor& running_mean, const at::Tensor& running_var,
                                 double momentum, double eps, at::Tensor& scale,
                                 at::Tensor& offset);

// The backward of y = (x - mean) invstd weight + bias as gx = a[c] gy + b[c] x + c0[c], from the
// per-channel sums of gy and of gy (x - mean) over the M values of a channel; with the
// gradients of weight and bias.
struct NormalizeBackwardMap {
  std::vector<double> a, b, c0, grad_weight, grad_bias;
};
NormalizeBackwardMap normalize_backward_map(const std::vector<double>& sum_g,
                                            const std::vector<double>& sum_g_centered,
                                            const at::Tensor& weight, const double* mean,
                                            const double* invstd, double M);

// Moments of groups of values (samples, or chunks of pixels) around each group's own shift,
// combined exactly (Chan et al.'s parallel variance): mean = the count-weighted mean of the
// group means, M2 = sum of the groups' M2 plus the spread of their means. Group s holds
// count(s) values of each of C channels; mean and var are double (C) tensors, written.
template <typename T, typename Count>
void combine_groups(const std::vector<T>& shift, const std::vector<double>& sum,
                    const std::vector<double>& sum_squares, int64_t groups, int64_t C,
                    const Count& count, at::Tensor& mean, at::Tensor& var) {
  double* m = mean.data_ptr<double>();
  double* v = var.data_ptr<double>();
  double total_count = 0;
  for (int64_t s = 0; s < groups; ++s) total_count += static_cast<double>(count(s));
  for (int64_t c = 0; c < C; ++c) {
    double total = 0;
    for (int64_t s = 0; s < groups; ++s)
      total += static_cast<double>(count(s)) * shift[s * C + c] + sum[s * C + c];
    m[c] = total / total_count;
    double m2 = 0;
    for (int64_t s = 0; s < groups; ++s) {
      const double n = static_cast<double>(count(s));
      const double d = sum[s * C + c] / n, group_mean = shift[s * C + c] + d;
      m2 += sum_squares[s * C + c] - d * sum[s * C + c];  // the group's own M2
      m2 += n * (group_mean - m[c]) * (group_mean - m[c]);
    }
    v[c] = std::max(0.0, m2 / total_count);
  }
}

// Per channel: sum of g * (z - mean) = sum over groups of (their sum of g * (z - shift)) +
// (shift - mean) * (their sum of g); and the sum of g. g_z_centered and g_sum are double (C).
template <typename T>
void combine_gradient_sums(const std::vector<T>& shift, const std::vector<double>& sum_g,
                           const std::vector<double>& sum_gz, int64_t N, int64_t C,
                           const at::Tensor& mean, at::Tensor& g_z_centered, at::Tensor& g_sum) {
  const double* m = mean.data_ptr<double>();
  double* d = g_z_centered.data_ptr<double>();
  double* s = g_sum.data_ptr<double>();
  for (int64_t c = 0; c < C; ++c) {
    d[c] = s[c] = 0;
    for (int64_t n = 0; n < N; ++n) {
      d[c] += sum_gz[n * C + c] + (shift[n * C + c] - m[c]) * sum_g[n * C + c];
      s[c] += sum_g[n * C + c];
    }
  }
}

}  // namespace kernels
}  // namespace datanas
