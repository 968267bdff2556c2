// A tensor given as its channel parts: channels-last tensors of one dtype, batch, height and
// width, which a concatenation along channels would join. The readers of a supernet cell's output
// take its nodes this way, so the concatenation (a write and a read of the whole output) and the
// strided slices of its gradient are never made.
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "util/error.h"

namespace datanas {
namespace kernels {

// The parts joined into one tensor, for a reader that takes only that (the part itself where
// there is one).
inline at::Tensor joined_channels(const std::vector<at::Tensor>& parts) {
  return parts.size() == 1 ? parts[0] : at::cat(parts, 1);
}

// The parts' channels together.
inline int64_t channels_of(at::TensorList parts) {
  int64_t channels = 0;
  for (const at::Tensor& part : parts) channels += part.size(1);
  return channels;
}

// Each part's columns of w (rows x the parts' channels together), contiguous: what reads or
// makes that part in a matrix product over the channels. w itself where there is one part.
inline std::vector<at::Tensor> part_columns(const at::Tensor& w, at::TensorList parts) {
  if (parts.size() == 1) return {w};
  std::vector<at::Tensor> columns;
  int64_t offset = 0;
  for (const at::Tensor& part : parts) {
    columns.push_back(w.slice(1, offset, offset + part.size(1)).contiguous());
    offset += part.size(1);
  }
  return columns;
}

// Throws an Error naming `what` unless the parts make one input: at least one, all 4-D, of one
// dtype, batch, height and width.
inline void check_channel_parts(at::TensorList parts, const std::string& what) {
  if (parts.empty()) throw Error(what + ": expected an input");
  const at::Tensor& x = parts[0];
  for (const at::Tensor& part : parts)
    if (part.dim() != 4 || x.dim() != 4 || part.scalar_type() != x.scalar_type() ||
        part.size(0) != x.size(0) || part.size(2) != x.size(2) || part.size(3) != x.size(3))
      throw Error(what + ": expected input parts of one dtype, batch, height and width");
}

// Runs of up to `run` pixels of an input given as its parts (dense channels-last tensors of T),
// as rows of all its channels: the one part's own rows (the kernels then apply the ReLU), or the
// parts gathered (NhwcKernels::gather_channels) into a caller's scratch of staging() values, in
// cache, with the ReLU applied.
template <typename T>
class ChannelRows {
 public:
  using Gather = void (*)(const T* const*, const int64_t*, int64_t, int64_t, int64_t, bool, T*);

  ChannelRows(const std::vector<at::Tensor>& parts, bool relu, int64_t run, Gather gather)
      : relu_(relu), run_(run), gather_(gather) {
    for (const at::Tensor& part : parts) {
      data_.push_back(part.data_ptr<T>());
      channels_.push_back(part.size(1));
      inputs_ += part.size(1);
    }
  }
  int64_t inputs() const { return inputs_; }
  bool whole() const { return data_.size() == 1; }
  // Whether the kernels still apply the ReLU to the rows.
  bool kernel_relu() const { return relu_ && whole(); }
  int64_t staging() const { return whole() ? 0 : run_ * inputs_; }
  // Pixels [b, e)'s rows (e - b <= run), from row 0 of the result.
  const T* rows(int64_t b, int64_t e, T* staged) const {
    if (whole()) return data_[0] + b * inputs_;
    gather_(data_.data(), channels_.data(), static_cast<int64_t>(data_.size()), b, e, relu_,
            staged);
    return staged;
  }

 private:
  std::vector<const T*> data_;
  std::vector<int64_t> channels_;
  int64_t inputs_ = 0;
  bool relu_;
  int64_t run_;
  Gather gather_;
};

}  // namespace kernels
}  // namespace datanas
