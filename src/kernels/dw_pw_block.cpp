#include "kernels/dw_pw_block.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <vector>

#include "kernels/layout.h"
#include "util/error.h"

namespace datanas {
namespace {

// Per-sample moments around each sample's own shift, combined exactly (Chan et al.'s parallel
// variance): mean = the mean of the sample means, M2 = sum of the samples' M2 plus the spread
// of their means.
template <typename T>
void combine_samples(const std::vector<T>& shift, const std::vector<double>& sum,
                     const std::vector<double>& sum_squares, int64_t N, int64_t C,
                     int64_t per_sample, at::Tensor& mean, at::Tensor& var) {
  double* m = mean.data_ptr<double>();
  double* v = var.data_ptr<double>();
  const double n = static_cast<double>(per_sample);
  for (int64_t c = 0; c < C; ++c) {
    double total = 0;
    for (int64_t s = 0; s < N; ++s) total += shift[s * C + c] + sum[s * C + c] / n;
    m[c] = total / N;
    double m2 = 0;
    for (int64_t s = 0; s < N; ++s) {
      const double d = sum[s * C + c] / n, sample_mean = shift[s * C + c] + d;
      m2 += sum_squares[s * C + c] - d * sum[s * C + c];  // the sample's own M2
      m2 += n * (sample_mean - m[c]) * (sample_mean - m[c]);
    }
    v[c] = std::max(0.0, m2 / (n * N));
  }
}

template <typename T>
DwPwOutput forward_typed(const at::Tensor& x, const at::Tensor& dw_weight,
                         const at::Tensor& pw_weight, const kernels::ConvGeometry& g,
                         const ChannelAffine* input_affine) {
  const auto& k = kernels::nhwc_table<T>();
  const int64_t N = x.size(0), C = x.size(1), outputs = pw_weight.size(0);
  const at::Tensor taps = dw_weight.contiguous().view({C, -1}).t().contiguous();
  const at::Tensor pwt = pw_weight.contiguous().view({outputs, C}).t().contiguous();
  at::Tensor in_scale, in_offset;
  if (input_affine) {
    in_scale = input_affine->scale.to(x.scalar_type()).contiguous();
    in_offset = input_affine->offset.to(x.scalar_type()).contiguous();
  }
  DwPwOutput out;
  out.z = at::empty({N, outputs, g.out_height, g.out_width},
                    x.options().memory_format(at::MemoryFormat::ChannelsLast));
  out.count = N * g.out_height * g.out_width;
  std::vector<T> shift(N * outputs);
  std::vector<double> sum(N * outputs, 0.0), sum_squares(N * outputs, 0.0);
  const int64_t in = g.height * g.width * C, out_size = g.out_height * g.out_width * outputs;
  const T* xp = x.data_ptr<T>();
  const T* wp = taps.data_ptr<T>();
  const T* pp = pwt.data_ptr<T>();
  const T* sp = input_affine ? in_scale.data_ptr<T>() : nullptr;
  const T* op = input_affine ? in_offset.data_ptr<T>() : nullptr;
  T* zp = out.z.data_ptr<T>();
  kernels::for_each_sample<T>(
      N, kernels::nhwc_block_scratch_elements(g, C), [&](int64_t n, T* scratch) {
        k.dw_pw_forward(xp + n * in, wp, pp, zp + n * out_size, C, outputs, g, sp, op, scratch,
                        &shift[n * outputs], &sum[n * outputs], &sum_squares[n * outputs]);
      });
  out.mean = at::empty({outputs}, x.options().dtype(at::kDouble));
  out.var = at::empty({outputs}, x.options().dtype(at::kDouble));
  combine_samples(shift, sum, sum_squares, N, outputs, g.out_height * g.out_width, out.mean,
                  out.var);
  return out;
}

}  // namespace

bool can_fuse_dw_pw(const at::Tensor& x) {
  return !at::GradMode::is_enabled() && x.dim() == 4 && x.device().is_cpu() &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) &&
         kernels::is_nhwc(kernels::layout_of(x));
}

DwPwOutput native_dw_pw_forward(const at::Tensor& input, const at::Tensor& dw_weight,
                                const at::Tensor& pw_weight, const DepthwiseConvOptions& o,
                                const ChannelAffine* input_affine) {
  if (!can_fuse_dw_pw(input))
    throw Error("dw-pw block: expected a channels-last float/double CPU input, autograd off");
  const at::Tensor x = input.contiguous(at::MemoryFormat::ChannelsLast);
  const kernels::ConvGeometry g = depthwise_geometry(x, dw_weight, o.stride, o.padding, o.dilation);
  if (pw_weight.dim() != 4 || pw_weight.size(1) != x.size(1) || pw_weight.size(2) != 1 ||
      pw_weight.size(3) != 1 || pw_weight.scalar_type() != x.scalar_type())
    throw Error("dw-pw block: expected a (outputs, C, 1, 1) pointwise weight of x's dtype");
  if (input_affine &&
      (input_affine->scale.numel() != x.size(1) || input_affine->offset.numel() != x.size(1)))
    throw Error("dw-pw block: expected an input affine map of one value per channel");
  if (x.scalar_type() == at::kFloat)
    return forward_typed<float>(x, dw_weight, pw_weight, g, input_affine);
  return forward_typed<double>(x, dw_weight, pw_weight, g, input_affine);
}

}  // namespace datanas
