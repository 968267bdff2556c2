#include "kernels/batch_norm.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/modules/batchnorm.h>

#include <cmath>
#include <vector>

#include "kernels/batch_norm_math.h"
#include "kernels/layout.h"
#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using namespace kernels;

// Per-channel values in double, from per-plane pairs reduced over the batch.
struct ChannelSums {
  std::vector<double> first, second;
};

ChannelSums reduce_planes(const std::vector<double>& pairs, int64_t N, int64_t C) {
  ChannelSums out{std::vector<double>(C, 0.0), std::vector<double>(C, 0.0)};
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      out.first[c] += pairs[2 * (n * C + c)];
      out.second[c] += pairs[2 * (n * C + c) + 1];
    }
  }
  return out;
}

constexpr int64_t kChunk = 1024;  // pixels per NHWC task

// Per-chunk pairs of C-vectors (first, second) reduced in chunk order.
ChannelSums reduce_chunks(const std::vector<double>& parts, int64_t tasks, int64_t C) {
  ChannelSums out{std::vector<double>(C, 0.0), std::vector<double>(C, 0.0)};
  for (int64_t t = 0; t < tasks; ++t) {
    for (int64_t c = 0; c < C; ++c) {
      out.first[c] += parts[(2 * t) * C + c];
      out.second[c] += parts[(2 * t + 1) * C + c];
    }
  }
  return out;
}

// Sums of (x - shift) and of its square, per channel.
template <typename T>
ChannelSums channel_moments(const at::Tensor& x, const std::vector<T>& shift) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const T* xp = x.data_ptr<T>();
  if (kernels::is_nhwc(kernels::layout_of(x))) {
    const auto& k = kernels::nhwc_table<T>();
    const int64_t tasks = (N * HW + kChunk - 1) / kChunk;
    std::vector<double> parts(2 * tasks * C, 0.0);
    kernels::for_each_pixel_chunk(N * HW, kChunk, [&](int64_t t, int64_t b, int64_t e) {
      k.moments(xp, C, b, e, shift.data(), &parts[2 * t * C], &parts[(2 * t + 1) * C]);
    });
    return reduce_chunks(parts, tasks, C);
  }
  const auto& k = kernels::kernel_table<T>();
  std::vector<double> pairs(2 * N * C);
  kernels::for_each_plane<T>(N * C, HW, 0, [&](int64_t plane, T*) {
    k.moments(xp + plane * HW, HW, shift[plane % C], &pairs[2 * plane], &pairs[2 * plane + 1]);
  });
  return reduce_planes(pairs, N, C);
}

// y = x * scale[c] + offset[c].
template <typename T>
void apply_scale_shift(const at::Tensor& x, at::Tensor& y, const std::vector<T>& scale,
                       const std::vector<T>& offset) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  if (kernels::is_nhwc(kernels::layout_of(x))) {
    const auto& k = kernels::nhwc_table<T>();
    kernels::for_each_pixel_chunk(N * HW, kChunk, [&](int64_t, int64_t b, int64_t e) {
      k.scale_shift(xp, yp, C, b, e, scale.data(), offset.data());
    });
    return;
  }
  const auto& k = kernels::kernel_table<T>();
  kernels::for_each_plane<T>(N * C, 2 * HW, 0, [&](int64_t plane, T*) {
    const int64_t c = plane % C;
    k.scale_shift(xp + plane * HW, yp + plane * HW, HW, scale[c], offset[c]);
  });
}

// Sums of gy and of gy * (x - mean), per channel.
template <typename T>
ChannelSums channel_grad_moments(const at::Tensor& x, const at::Tensor& gy,
                                 const std::vector<T>& mean) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const T* xp = x.data_ptr<T>();
  const T* gyp = gy.data_ptr<T>();
  if (kernels::is_nhwc(kernels::layout_of(x))) {
    const auto& k = kernels::nhwc_table<T>();
    const int64_t tasks = (N * HW + kChunk - 1) / kChunk;
    std::vector<double> parts(2 * tasks * C, 0.0);
    kernels::for_each_pixel_chunk(N * HW, kChunk, [&](int64_t t, int64_t b, int64_t e) {
      k.grad_moments(xp, gyp, C, b, e, mean.data(), &parts[2 * t * C], &parts[(2 * t + 1) * C]);
    });
    return reduce_chunks(parts, tasks, C);
  }
  const auto& k = kernels::kernel_table<T>();
  std::vector<double> pairs(2 * N * C);
  kernels::for_each_plane<T>(N * C, 2 * HW, 0, [&](int64_t plane, T*) {
    k.grad_moments(xp + plane * HW, gyp + plane * HW, HW, mean[plane % C], &pairs[2 * plane],
                   &pairs[2 * plane + 1]);
  });
  return reduce_planes(pairs, N, C);
}

// gx = a[c] * gy + b[c] * x + c0[c].
template <typename T>
void apply_normalize_backward(const at::Tensor& x, const at::Tensor& gy, at::Tensor& gx,
                              const std::vector<T>& a, const std::vector<T>& b,
                              const std::vector<T>& c0) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const T* xp = x.data_ptr<T>();
  const T* gyp = gy.data_ptr<T>();
  T* gxp = gx.data_ptr<T>();
  if (kernels::is_nhwc(kernels::layout_of(x))) {
    const auto& k = kernels::nhwc_table<T>();
    kernels::for_each_pixel_chunk(N * HW, kChunk, [&](int64_t, int64_t lo, int64_t hi) {
      k.normalize_backward(xp, gyp, gxp, C, lo, hi, a.data(), b.data(), c0.data());
    });
    return;
  }
  const auto& k = kernels::kernel_table<T>();
  kernels::for_each_plane<T>(N * C, 3 * HW, 0, [&](int64_t plane, T*) {
    const int64_t c = plane % C;
    k.normalize_backward(xp + plane * HW, gyp + plane * HW, gxp + plane * HW, HW, a[c], b[c],
                         c0[c]);
  });
}

// y = x normalised with its batch statistics, then scaled and shifted (y may be x); the running
// statistics are updated.
template <typename T>
BatchMoments normalize_typed(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                             const at::Tensor& running_mean, const at::Tensor& running_var,
                             double momentum, double eps, at::Tensor& y) {
  const int64_t C = x.size(1), M = x.size(0) * x.size(2) * x.size(3);
  if (M < 2) throw Error("batch norm: expected more than one value per channel in training");
  // Moments around the first pixel's value keep the one-pass variance accurate.
  const at::Tensor first = x.select(0, 0).select(1, 0).select(1, 0).contiguous();
  std::vector<T> shift(first.data_ptr<T>(), first.data_ptr<T>() + C);
  const ChannelSums sums = channel_moments<T>(x, shift);
  at::Tensor mean = at::empty({C}, x.options().dtype(at::kDouble));
  at::Tensor var = at::empty({C}, x.options().dtype(at::kDouble));
  for (int64_t c = 0; c < C; ++c) {
    const double shifted_mean = sums.first[c] / M;
    var.data_ptr<double>()[c] = std::max(0.0, sums.second[c] / M - shifted_mean * shifted_mean);
    mean.data_ptr<double>()[c] = static_cast<double>(shift[c]) + shifted_mean;
  }
  at::Tensor scale, offset;
  const BatchMoments m = affine_from_moments(mean, var, M, weight, bias, running_mean, running_var,
                                             momentum, eps, scale, offset);
  apply_scale_shift<T>(x, y, values_of<T>(scale), values_of<T>(offset));
  return m;
}

template <typename T>
at::Tensor forward_typed(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                         const at::Tensor& bias, const at::Tensor& running_mean,
                         const at::Tensor& running_var, double momentum, double eps) {
  at::Tensor y = at::empty_like(x);
  const BatchMoments m =
      normalize_typed<T>(x, weight, bias, running_mean, running_var, momentum, eps, y);
  ctx->save_for_backward({x, weight, m.mean, m.invstd});
  ctx->saved_data["has_bias"] = present(bias);
  return y;
}

template <typename T>
variable_list backward_typed(AutogradContext* ctx, const at::Tensor& grad) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor& x = saved[0];
  const at::Tensor& weight = saved[1];
  const double* mean = saved[2].data_ptr<double>();
  const double* invstd = saved[3].data_ptr<double>();
  const int64_t C = x.size(1);
  const double M = static_cast<double>(x.size(0) * x.size(2) * x.size(3));
  at::Tensor gy = grad.contiguous(kernels::layout_of(x));
  std::vector<T> mean_t(C);
  for (int64_t c = 0; c < C; ++c) mean_t[c] = static_cast<T>(mean[c]);
  const ChannelSums sums = channel_grad_moments<T>(x, gy, mean_t);
  const NormalizeBackwardMap map =
      normalize_backward_map(sums.first, sums.second, weight, mean, invstd, M);
  const at::TensorOptions doubles = x.options().dtype(at::kDouble);
  const at::Tensor grad_weight = at::tensor(map.grad_weight, doubles);
  const at::Tensor grad_bias = at::tensor(map.grad_bias, doubles);
  at::Tensor gx = at::empty_like(x);
  apply_normalize_backward<T>(x, gy, gx, values_of<T>(map.a), values_of<T>(map.b),
                              values_of<T>(map.c0));
  const bool has_bias = ctx->saved_data["has_bias"].toBool();
  return {gx,
          present(weight) ? grad_weight.to(weight.scalar_type()) : at::Tensor(),
          has_bias ? grad_bias.to(x.scalar_type()) : at::Tensor(),
          at::Tensor(),
          at::Tensor(),
          at::Tensor(),
          at::Tensor()};
}

struct BatchNormFunction : public torch::autograd::Function<BatchNormFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const at::Tensor& bias, const at::Tensor& running_mean,
                            const at::Tensor& running_var, double momentum, double eps) {
    if (input.dim() != 4) throw Error("batch norm: expected a 4-D (N, C, H, W) input");
    at::Tensor x = input.contiguous(kernels::layout_of(input));
    if (x.scalar_type() == at::kFloat)
      return forward_typed<float>(ctx, x, weight, bias, running_mean, running_var, momentum, eps);
    return forward_typed<double>(ctx, x, weight, bias, running_mean, running_var, momentum, eps);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (grads[0].scalar_type() == at::kFloat) return backward_typed<float>(ctx, grads[0]);
    return backward_typed<double>(ctx, grads[0]);
  }
};

}  // namespace

at::Tensor native_batch_norm_train(const at::Tensor& x, const at::Tensor& weight,
                                   const at::Tensor& bias, const at::Tensor& running_mean,
                                   const at::Tensor& running_var, double momentum, double eps) {
  return BatchNormFunction::apply(x, or_empty(weight, x), or_empty(bias, x),
                                  or_empty(running_mean, x), or_empty(running_var, x), momentum,
                                  eps);
}

// Without autograd (the forward-only ops of an architecture step, the gap measurement) an input
// that nobody else holds is normalised in place: no new tensor and its page faults.
static bool can_normalize_in_place(const at::Tensor& x) {
  return !at::GradMode::is_enabled() && x.dim() == 4 && x.use_count() == 1 &&
         x.storage().use_count() == 1 && x.is_contiguous(kernels::layout_of(x));
}

double next_momentum(torch::nn::BatchNorm2dImpl& bn) {
  const auto& o = bn.options;
  double factor = o.momentum().value_or(0.0);
  if (bn.is_training() && o.track_running_stats() && bn.num_batches_tracked.defined()) {
    bn.num_batches_tracked += 1;
    if (!o.momentum()) factor = 1.0 / bn.num_batches_tracked.item<double>();
  }
  return factor;
}

bool uses_batch_statistics(const torch::nn::BatchNorm2dImpl& bn) {
  return bn.is_training() || !bn.options.track_running_stats();
}

at::Tensor batch_norm_forward(torch::nn::BatchNorm2dImpl& bn, at::Tensor x, KernelBackend backend) {
  const auto& o = bn.options;
  if (!uses_batch_statistics(bn) || !use_native_kernels(backend, x) || x.dim() != 4)
    return bn.forward(x);
  const double factor = next_momentum(bn);
  if (!can_normalize_in_place(x))
    return native_batch_norm_train(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, factor,
                                   o.eps());
  if (x.scalar_type() == at::kFloat) {
    normalize_typed<float>(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, factor, o.eps(),
                           x);
  } else {
    normalize_typed<double>(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, factor, o.eps(),
                            x);
  }
  return x;
}

ChannelAffine batch_norm_affine(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& mean,
                                const at::Tensor& var, int64_t count) {
  if (count < 2) throw Error("batch norm: expected more than one value per channel in training");
  const double factor = next_momentum(bn);
  at::Tensor scale, offset;
  affine_from_moments(mean, var, count, bn.weight, bn.bias, bn.running_mean, bn.running_var, factor,
                      bn.options.eps(), scale, offset);
  return {scale, offset};
}

at::Tensor apply_channel_affine(at::Tensor x, const ChannelAffine& affine) {
  if (x.scalar_type() == at::kFloat) {
    apply_scale_shift<float>(x, x, values_of<float>(affine.scale), values_of<float>(affine.offset));
  } else {
    apply_scale_shift<double>(x, x, values_of<double>(affine.scale),
                              values_of<double>(affine.offset));
  }
  return x;
}

}  // namespace datanas
