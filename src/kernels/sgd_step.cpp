#include "kernels/sgd_step.h"

#include <c10/util/string_utils.h>
#include <torch/nn/utils/clip_grad.h>

#include <cmath>
#include <memory>
#include <optional>
#include <string>

#include "kernels/flat_kernels.h"
#include "kernels/task_pool.h"

namespace datanas {
namespace {
using kernels::best_flat_kernels;
using kernels::SgdCoefficients;

// Elements per unit of parallel work: large enough to amortise the scheduling, small enough that
// the cifar supernet's 1.9 M values spread over both cores.
constexpr int64_t kChunk = 1 << 14;

struct Chunk {
  size_t tensor;
  int64_t begin, end;
};

std::vector<Chunk> chunks_of(const std::vector<at::Tensor>& tensors) {
  std::vector<Chunk> chunks;
  for (size_t t = 0; t < tensors.size(); ++t)
    for (int64_t begin = 0; begin < tensors[t].numel(); begin += kChunk)
      chunks.push_back({t, begin, std::min(begin + kChunk, tensors[t].numel())});
  return chunks;
}

template <class F>
void parallel_over(const std::vector<Chunk>& chunks, const F& f) {
  kernels::parallel_pieces(0, static_cast<int64_t>(chunks.size()), 1,
                           [&](int64_t begin, int64_t end) {
                             for (int64_t i = begin; i < end; ++i) f(i, chunks[i]);
                           });
}

// A dense tensor's elements are one block starting at data_ptr (strides are never negative), so
// tensors of equal sizes and strides can be walked as flat arrays side by side.
bool flat(const at::Tensor& t) {
  return t.defined() && t.device().is_cpu() &&
         (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble) &&
         t.is_non_overlapping_and_dense();
}

bool flat_like(const at::Tensor& t, const at::Tensor& like) {
  return flat(t) && t.scalar_type() == like.scalar_type() && t.sizes().equals(like.sizes()) &&
         t.strides().equals(like.strides());
}

template <class T>
double sum_of_squares(const T* x, int64_t n) {
  double s[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; ++k) s[k] += static_cast<double>(x[i + k]) * x[i + k];
  for (; i < n; ++i) s[0] += static_cast<double>(x[i]) * x[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

double native_clip_grad_norm(const std::vector<at::Tensor>& grads, double max_norm) {
  const std::vector<Chunk> chunks = chunks_of(grads);
  std::vector<double> partial(chunks.size());
  parallel_over(chunks, [&](int64_t i, const Chunk& c) {
    AT_DISPATCH_FLOATING_TYPES(grads[c.tensor].scalar_type(), "clip_grad_norm", [&] {
      partial[i] = sum_of_squares(grads[c.tensor].data_ptr<scalar_t>() + c.begin, c.end - c.begin);
    });
  });
  double sum = 0;
  for (double p : partial) sum += p;
  const double norm = std::sqrt(sum);
  const double coef = max_norm / (norm + 1e-6);
  // LibTorch scales by min(coef, 1), a NaN coefficient included (every gradient turns NaN).
  if (!(coef >= 1.0)) {
    parallel_over(chunks, [&](int64_t, const Chunk& c) {
      AT_DISPATCH_FLOATING_TYPES(grads[c.tensor].scalar_type(), "clip_grad_norm", [&] {
        // In place: the one output of scaled_copies is g itself.
        scalar_t* g = grads[c.tensor].data_ptr<scalar_t>();
        const scalar_t factor = static_cast<scalar_t>(coef);
        best_flat_kernels<scalar_t>().scaled_copies(g, &factor, 1, &g, c.begin, c.end);
      });
    });
    for (const at::Tensor& g : grads) g.unsafeGetTensorImpl()->bump_version();
  }
  return norm;
}

// One parameter's update: its tensors and its group's hyper-parameters.
struct Update {
  at::Tensor param, grad, buffer;
  bool fresh_buffer = false;  // the first step: the buffer starts as the update itself
  const torch::optim::SGDOptions* options = nullptr;
};

std::string state_key(const at::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

// Every parameter's update, or none when one of them is not for the flat kernel.
std::optional<std::vector<Update>> native_updates(torch::optim::SGD& optimizer) {
  std::vector<Update> updates;
  for (auto& group : optimizer.param_groups()) {
    const auto& options = static_cast<const torch::optim::SGDOptions&>(group.options());
    for (const at::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      Update u{p, p.grad(), at::Tensor(), false, &options};
      if (!flat(p) || !flat_like(u.grad, p)) return std::nullopt;
      if (options.momentum() != 0) {
        auto state = optimizer.state().find(state_key(p));
        if (state == optimizer.state().end()) {
          u.buffer = at::empty_like(p);
          u.fresh_buffer = true;
        } else {
          u.buffer = static_cast<torch::optim::SGDParamState&>(*state->second).momentum_buffer();
        }
        if (!flat_like(u.buffer, p)) return std::nullopt;
      }
      updates.push_back(std::move(u));
    }
  }
  return updates;
}

void run_updates(torch::optim::SGD& optimizer, const std::vector<Update>& updates) {
  std::vector<at::Tensor> params;
  for (const Update& u : updates) params.push_back(u.param);
  parallel_over(chunks_of(params), [&](int64_t, const Chunk& c) {
    const Update& u = updates[c.tensor];
    AT_DISPATCH_FLOATING_TYPES(u.param.scalar_type(), "sgd_step", [&] {
      const torch::optim::SGDOptions& o = *u.options;
      // LibTorch hands its kernels each scale as the tensor's type.
      const SgdCoefficients<scalar_t> coefficients{static_cast<scalar_t>(o.weight_decay()),
                                                   static_cast<scalar_t>(o.momentum()),
                                                   static_cast<scalar_t>(1 - o.dampening()),
                                                   static_cast<scalar_t>(-1 * o.lr()),
                                                   o.weight_decay() != 0,
                                                   o.momentum() != 0,
                                                   o.nesterov(),
                                                   u.fresh_buffer};
      best_flat_kernels<scalar_t>().sgd_update(
          u.param.data_ptr<scalar_t>(), u.grad.data_ptr<scalar_t>(),
          u.buffer.defined() ? u.buffer.data_ptr<scalar_t>() : nullptr, c.begin, c.end,
          coefficients);
    });
  });
  for (const Update& u : updates) {
    u.param.unsafeGetTensorImpl()->bump_version();
    if (!u.buffer.defined()) continue;
    if (!u.fresh_buffer) {
      u.buffer.unsafeGetTensorImpl()->bump_version();
      continue;
    }
    auto state = std::make_unique<torch::optim::SGDParamState>();
    state->momentum_buffer(u.buffer);
    optimizer.state()[state_key(u.param)] = std::move(state);
  }
}

}  // namespace

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm,
                      KernelBackend backend) {
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : params) {
    if (!p.grad().defined()) continue;
    if (backend != KernelBackend::kNative || !flat(p.grad()))
      return torch::nn::utils::clip_grad_norm_(params, max_norm);
    grads.push_back(p.grad());
  }
  return native_clip_grad_norm(grads, max_norm);
}

void sgd_step(torch::optim::SGD& optimizer, KernelBackend backend) {
  if (backend == KernelBackend::kNative) {
    if (auto updates = native_updates(optimizer)) return run_updates(optimizer, *updates);
  }
  optimizer.step();
}

}  // namespace datanas
