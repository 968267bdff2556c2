// Numerical faults: a NaN or Inf loss or gradient is detected at the step where it appears,
// before any optimiser step uses it. The run then stops (naming the step and the last good
// checkpoint) or, with --on-nonfinite skip, drops that batch and restores what its forward
// pass touched (BatchNorm statistics), so no non-finite value ever reaches the weights or a
// checkpoint.
#pragma once
#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <string>
#include <vector>

#include "util/error.h"

namespace datanas {

enum class NonFinitePolicy { kStop, kSkip };

// "stop" or "skip"; throws Error naming --on-nonfinite otherwise.
NonFinitePolicy parse_nonfinite_policy(const std::string& text);

// Thrown by the checks below; the loops catch it to stop with context or to skip the batch.
class NonFiniteError : public Error {
 public:
  explicit NonFiniteError(const std::string& message) : Error(message) {}
};

void check_finite_loss(double loss);                           // "loss is not finite (nan)"
void check_finite_norm(double norm, const std::string& what);  // "<what> is not finite (inf)"
// Every defined gradient of `tensors` is finite; `what` names them ("alpha gradient").
void check_finite_gradients(const std::vector<at::Tensor>& tensors, const std::string& what);

// Name of the first parameter or buffer of `module` holding a NaN or Inf ("" when none).
std::string first_nonfinite_tensor(const torch::nn::Module& module);

// A copy of a module's buffers (BatchNorm running statistics), restored after a skipped batch.
class BufferSnapshot {
 public:
  explicit BufferSnapshot(const torch::nn::Module& module);
  void restore() const;

 private:
  std::vector<at::Tensor> live_, saved_;
};

// "; last good checkpoint: PATH" or "; last good checkpoint: none", for the stop message.
std::string last_good_checkpoint(const std::string& checkpoint_path);

}  // namespace datanas
