// Runs a plane kernel over the N x C planes of a tensor on the kernels' pool (task_pool.h; so
// --threads applies), with one scratch buffer per chunk.
#pragma once
#include <algorithm>
#include <cstdint>

#include "kernels/aligned_buffer.h"
#include "kernels/plane_kernels.h"
#include "kernels/task_pool.h"

namespace datanas {
namespace kernels {

template <typename T>
const PlaneKernels<T>& kernel_table();
template <>
inline const PlaneKernels<float>& kernel_table<float>() {
  return best_kernels_f32();
}
template <>
inline const PlaneKernels<double>& kernel_table<double>() {
  return best_kernels_f64();
}

// fn(plane, scratch) for plane in [0, planes). Chunks hold at least ~16k elements of work.
template <typename T, typename Fn>
void for_each_plane(int64_t planes, int64_t plane_elements, int64_t scratch_elements,
                    const Fn& fn) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, plane_elements));
  parallel_pieces(0, planes, grain, [&](int64_t begin, int64_t end) {
    AlignedBuffer<T> scratch(scratch_elements, /*zeroed=*/true);
    for (int64_t plane = begin; plane < end; ++plane) fn(plane, scratch.data());
  });
}

}  // namespace kernels
}  // namespace datanas
