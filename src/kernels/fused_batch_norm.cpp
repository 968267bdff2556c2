#include "kernels/fused_batch_norm.h"

#include <ATen/ATen.h>

#include <vector>

#include "kernels/layout.h"
#include "util/error.h"

namespace datanas {
namespace kernels {
namespace {

constexpr int64_t kChunk = 1024;  // pixels per task: fixed, so sums do not depend on threads

template <typename T>
void scale_shift(const at::Tensor& z, at::Tensor& y, const at::Tensor& scale,
                 const at::Tensor& offset) {
  const auto& k = nhwc_table<T>();
  const std::vector<T> s = values_of<T>(scale), o = values_of<T>(offset);
  const int64_t C = z.size(1);
  const T* zp = z.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  for_each_pixel_chunk(z.numel() / C, kChunk, [&](int64_t, int64_t b, int64_t e) {
    k.scale_shift(zp, yp, C, b, e, s.data(), o.data());
  });
}

// Per channel of z: the sums of gy and of gy * (z - mean), per chunk and then in chunk order.
template <typename T>
void gradient_sums(const at::Tensor& z, const at::Tensor& gy, const at::Tensor& mean,
                   std::vector<double>& sum_g, std::vector<double>& sum_g_centered) {
  const auto& k = nhwc_table<T>();
  const std::vector<T> m = values_of<T>(mean);
  const int64_t C = z.size(1), P = z.numel() / C, chunks = (P + kChunk - 1) / kChunk;
  std::vector<double> parts_g(chunks * C, 0.0), parts_gz(chunks * C, 0.0);
  const T* zp = z.data_ptr<T>();
  const T* gp = gy.data_ptr<T>();
  for_each_pixel_chunk(P, kChunk, [&](int64_t t, int64_t begin, int64_t end) {
    k.grad_moments(zp, gp, C, begin, end, m.data(), &parts_g[t * C], &parts_gz[t * C]);
  });
  sum_g.assign(C, 0.0);
  sum_g_centered.assign(C, 0.0);
  for (int64_t t = 0; t < chunks; ++t) {
    for (int64_t c = 0; c < C; ++c) {
      sum_g[c] += parts_g[t * C + c];
      sum_g_centered[c] += parts_gz[t * C + c];
    }
  }
}

}  // namespace

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
    scale_shift<float>(z, y, scale, offset);
  } else {
    scale_shift<double>(z, y, scale, offset);
  }
  return y;
}

NormalizeBackwardMap batch_norm_backward_map(const at::Tensor& z, const at::Tensor& gy,
                                             const BatchMoments& moments,
                                             const at::Tensor& weight) {
  std::vector<double> sum_g, sum_g_centered;
  if (z.scalar_type() == at::kFloat) {
    gradient_sums<float>(z, gy, moments.mean, sum_g, sum_g_centered);
  } else {
    gradient_sums<double>(z, gy, moments.mean, sum_g, sum_g_centered);
  }
  return normalize_backward_map(sum_g, sum_g_centered, weight, moments.mean.data_ptr<double>(),
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
