#include "util/test_hooks.h"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>

#include "util/error.h"

namespace datanas {
namespace {

InjectedFault parse_fault(const char* text) {
  InjectedFault fault;
  if (!text || !*text) return fault;
  const std::string value = text;
  const size_t at = value.find('@'), colon = value.find(':');
  const std::string expected =
      "DATANAS_TEST_FAULT: expected loss|grad@EPOCH:STEP, got '" + value + "'";
  if (at == std::string::npos || colon == std::string::npos || colon < at) throw Error(expected);
  fault.kind = value.substr(0, at);
  if (fault.kind != "loss" && fault.kind != "grad") throw Error(expected);
  try {
    fault.epoch = std::stoi(value.substr(at + 1, colon - at - 1));
    const std::string step = value.substr(colon + 1);
    fault.step = step == "*" ? 0 : std::stoll(step);
  } catch (const std::exception&) {
    throw Error(expected);
  }
  if (fault.epoch < 1 || fault.step < 0) throw Error(expected);
  return fault;
}

}  // namespace

bool InjectedFault::hits(const char* what, int epoch_index, int64_t step_index) const {
  return kind == what && epoch == epoch_index + 1 && (step == 0 || step == step_index + 1);
}

const InjectedFault& injected_fault() {
  static const InjectedFault fault = parse_fault(std::getenv("DATANAS_TEST_FAULT"));
  return fault;
}

at::Tensor poisoned_images(const at::Tensor& images) { return at::full_like(images, std::nan("")); }

void poison_gradients_of(const at::Tensor& loss) {
  loss.register_hook([](const at::Tensor& grad) { return grad * std::nan(""); });
}

}  // namespace datanas
