// The batch norm of a sep conv's first fused block (dw_pw_bn.h) needs, in its backward, two sums
// per channel over its output's gradient g: sum g and sum g (z - mean), z its input. The second
// block's backward makes g (its input's gradient) a sample at a time while that sample of z (its
// input) is in cache, so it takes the sums there and leaves them in a link the two blocks share,
// saving the first block a pass of its own over z and g from memory.
//
// The link is a small tensor made for each forward of the pair. The first block's forward puts
// z's mean in it; the second block's backward publishes the sums with the identity of the
// gradient they belong to; the first block's backward takes them only for that very tensor,
// unchanged since (else it takes the sums itself), and clears them.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <cstdint>
#include <vector>

namespace datanas {
namespace kernels {

struct GradSums {
  std::vector<double> g, g_centered;  // per channel: sum g, sum g (z - mean)
};

// A fresh link for `channels` channels, with no mean and no sums.
at::Tensor make_grad_sums_link(int64_t channels);

// The first block's forward: z's batch mean (double, one per channel).
void set_link_mean(const at::Tensor& link, const at::Tensor& mean);
// The mean set, or empty where none was.
std::vector<double> link_mean(const at::Tensor& link);

// The second block's backward: the sums of `grad`, the gradient it returns for its input.
void publish_grad_sums(const at::Tensor& link, const GradSums& sums, const at::Tensor& grad);

// The first block's backward: the sums published for `grad` where grad is the published tensor
// and unchanged since; they are cleared either way.
c10::optional<GradSums> take_grad_sums(const at::Tensor& link, const at::Tensor& grad);

}  // namespace kernels
}  // namespace datanas
