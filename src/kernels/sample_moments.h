// The per-sample sums behind a block's BlockMoments (kernels/batch_norm.h): each sample's moments
// around its own shift and, for a measured block, its gradient sums, filled by the kernels a
// sample at a time, then combined exactly into the batch's moments.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/batch_norm_math.h"
#include "kernels/nhwc_kernels.h"
#include "util/error.h"

namespace datanas {
namespace kernels {

// A measured block's output gradient, channels-last: defined, of the block output's `sizes` and
// of `dtype`; else throws `message`.
inline at::Tensor measured_gradient(const at::Tensor& grad, at::IntArrayRef sizes,
                                    at::ScalarType dtype, const char* message) {
  if (!grad.defined() || grad.sizes() != sizes || grad.scalar_type() != dtype) throw Error(message);
  return grad.contiguous(at::MemoryFormat::ChannelsLast);
}

template <typename T>
class SampleMoments {
 public:
  // N samples of C channels; `measured`: gradient sums too.
  SampleMoments(int64_t N, int64_t C, bool measured)
      : N_(N),
        C_(C),
        shift_(N * C),
        sum_(N * C, 0.0),
        sum_squares_(N * C, 0.0),
        sum_g_(measured ? N * C : 0, 0.0),
        sum_gz_(sum_g_) {}

  // Sample n's slots; g: sample n's output gradient (measured blocks only, else null).
  BlockSums<T> of(int64_t n, const T* g) {
    BlockSums<T> sums{&shift_[n * C_], &sum_[n * C_], &sum_squares_[n * C_]};
    if (g) {
      sums.g = g;
      sums.sum_g = &sum_g_[n * C_];
      sums.sum_gz = &sum_gz_[n * C_];
    }
    return sums;
  }

  // The batch's moments, each sample holding `per_sample` values of each channel.
  BlockMoments combine(int64_t per_sample, const at::TensorOptions& doubles) const {
    BlockMoments out;
    out.mean = at::empty({C_}, doubles);
    out.var = at::empty({C_}, doubles);
    out.count = N_ * per_sample;
    combine_groups(
        shift_, sum_, sum_squares_, N_, C_, [&](int64_t) { return per_sample; }, out.mean, out.var);
    if (!sum_g_.empty()) {
      out.g_z_centered = at::empty({C_}, doubles);
      out.g_sum = at::empty({C_}, doubles);
      combine_gradient_sums(shift_, sum_g_, sum_gz_, N_, C_, out.mean, out.g_z_centered, out.g_sum);
    }
    return out;
  }

 private:
  int64_t N_, C_;
  std::vector<T> shift_;
  std::vector<double> sum_, sum_squares_, sum_g_, sum_gz_;
};

}  // namespace kernels
}  // namespace datanas
