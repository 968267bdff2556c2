// Which of the two layouts the native kernels run a 4-D tensor in, and the matching dispatch
// between the NCHW plane tables and the NHWC ones.
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "kernels/aligned_buffer.h"
#include "kernels/nhwc_kernels.h"
#include "kernels/plane_parallel.h"
#include "kernels/task_pool.h"

namespace datanas {
namespace kernels {

// NHWC when LibTorch suggests channels-last for x (a tensor both layouts describe counts as
// NCHW); the kernels then read x.contiguous(layout_of(x)).
inline at::MemoryFormat layout_of(const at::Tensor& x) {
  return x.dim() == 4 ? x.suggest_memory_format() : at::MemoryFormat::Contiguous;
}

inline bool is_nhwc(at::MemoryFormat format) { return format == at::MemoryFormat::ChannelsLast; }

// Whether x is what the per-sample NHWC kernels take whole: a dense 4-D channels-last float or
// double CPU tensor.
inline bool nhwc_float_cpu(const at::Tensor& x) {
  return x.dim() == 4 && x.device().is_cpu() && !x.is_sparse() &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble) && is_nhwc(layout_of(x));
}

// A weight's (rows, rest) matrix transposed, rows being its first dimension: the tap- or
// input-major layout the kernels read. A copy loop into LibTorch's aligned memory (a
// std::vector's 16-byte alignment split the kernels' vector loads across cache lines): fewer
// dispatcher calls than a transpose and copy, once per op call.
template <typename T>
at::Tensor transposed_weight(const at::Tensor& weight) {
  const at::Tensor w = weight.contiguous();
  const int64_t rows = w.size(0), columns = w.numel() / rows;
  at::Tensor out = at::empty({columns, rows}, w.options());
  const T* p = w.data_ptr<T>();
  T* o = out.data_ptr<T>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < columns; ++c) o[c * rows + r] = p[r * columns + c];
  return out;
}

template <typename T>
const NhwcKernels<T>& nhwc_table();
template <>
inline const NhwcKernels<float>& nhwc_table<float>() {
  return best_nhwc_kernels_f32();
}
template <>
inline const NhwcKernels<double>& nhwc_table<double>() {
  return best_nhwc_kernels_f64();
}

// fn(n) for every sample n in [0, N) on the kernels' pool (task_pool.h; --threads applies).
template <typename Fn>
void for_each_sample(int64_t N, const Fn& fn) {
  parallel_pieces(0, N, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) fn(n);
  });
}

// fn(n, scratch) for every sample, with `scratch_elements` of scratch per task.
template <typename T, typename Fn>
void for_each_sample(int64_t N, int64_t scratch_elements, const Fn& fn) {
  parallel_pieces(0, N, 1, [&](int64_t begin, int64_t end) {
    // Left uninitialised: the kernels write what they read (zeroing it was 2 % of a search
    // step; the suites pass with it filled with NaN).
    AlignedBuffer<T> scratch(scratch_elements);
    for (int64_t n = begin; n < end; ++n) fn(n, scratch.data());
  });
}

// Fixed chunks of `chunk` pixels out of P, so that per-chunk partial sums (and their order) do
// not depend on the thread count: fn(task, begin, end).
template <typename Fn>
void for_each_pixel_chunk(int64_t P, int64_t chunk, const Fn& fn) {
  const int64_t tasks = (P + chunk - 1) / chunk;
  parallel_pieces(0, tasks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) fn(t, t * chunk, std::min(P, (t + 1) * chunk));
  });
}

}  // namespace kernels
}  // namespace datanas
