// Test-only fault injection, driven by environment variables that users never set, so the
// reliability tests can drive the real binary into the failures they check:
//   DATANAS_TEST_FAULT=KIND@EPOCH:STEP  KIND is "loss" (the batch's images become NaN, so the
//     loss is NaN) or "grad" (the loss stays finite, every gradient becomes NaN); EPOCH and
//     STEP are 1-based, STEP within the epoch. "KIND@EPOCH:*" poisons every step of the epoch.
// (DATANAS_TEST_PAUSE_IN_CHECKPOINT, the pause inside checkpoint writes, is in util/files.cpp.)
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace datanas {

struct InjectedFault {
  std::string kind;  // "" when DATANAS_TEST_FAULT is unset
  int epoch = 0;
  int64_t step = 0;                                                        // 0 = every step
  bool hits(const char* what, int epoch_index, int64_t step_index) const;  // 0-based indices
};

// Parsed once from the environment; a malformed value is an Error naming the variable.
const InjectedFault& injected_fault();

// Makes every value of `images` NaN (a copy: the loader's tensor is not touched).
at::Tensor poisoned_images(const at::Tensor& images);

// Registers a hook on `loss` that turns every gradient flowing back from it into NaN.
void poison_gradients_of(const at::Tensor& loss);

}  // namespace datanas
