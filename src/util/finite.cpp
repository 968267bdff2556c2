#include "util/finite.h"

#include <ATen/ATen.h>

#include <cmath>

#include "util/files.h"

namespace datanas {

NonFinitePolicy parse_nonfinite_policy(const std::string& text) {
  if (text == "stop") return NonFinitePolicy::kStop;
  if (text == "skip") return NonFinitePolicy::kSkip;
  throw Error("--on-nonfinite: expected stop or skip, got '" + text + "'");
}

static std::string value_name(double value) { return std::isnan(value) ? "nan" : "inf"; }

void check_finite_loss(double loss) {
  if (!std::isfinite(loss)) throw NonFiniteError("loss is not finite (" + value_name(loss) + ")");
}

void check_finite_norm(double norm, const std::string& what) {
  if (!std::isfinite(norm))
    throw NonFiniteError(what + " is not finite (" + value_name(norm) + ")");
}

void check_finite_gradients(const std::vector<at::Tensor>& tensors, const std::string& what) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& grad = tensors[i].grad();
    if (grad.defined() && !at::isfinite(grad).all().item<bool>())
      throw NonFiniteError(what + " " + std::to_string(i) + " is not finite");
  }
}

std::string first_nonfinite_tensor(const torch::nn::Module& module) {
  at::NoGradGuard no_grad;
  for (const auto& item : module.named_parameters())
    if (!at::isfinite(item.value()).all().item<bool>()) return item.key();
  for (const auto& item : module.named_buffers())
    if (item.value().is_floating_point() && !at::isfinite(item.value()).all().item<bool>())
      return item.key();
  return "";
}

BufferSnapshot::BufferSnapshot(const torch::nn::Module& module) {
  for (const at::Tensor& buffer : module.buffers()) {
    live_.push_back(buffer);
    saved_.push_back(buffer.detach().clone());
  }
}

void BufferSnapshot::restore() const {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < live_.size(); ++i) live_[i].copy_(saved_[i]);
}

std::string last_good_checkpoint(const std::string& checkpoint_path) {
  return "; last good checkpoint: " + (file_exists(checkpoint_path) ? checkpoint_path : "none");
}

}  // namespace datanas
