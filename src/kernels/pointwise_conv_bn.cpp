#include "kernels/pointwise_conv_bn.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/modules/batchnorm.h>

#include <algorithm>
#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/channel_parts.h"
#include "kernels/fused_batch_norm.h"
#include "kernels/layout.h"
#include "kernels/pointwise_conv.h"
#include "util/error.h"

namespace datanas {
namespace {
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using namespace kernels;

// The work is split into fixed chunks of pixels (partial sums, and their order, do not depend
// on the thread count), and each chunk into runs handled while in cache: a run of the conv's
// output or of the batch norm's input gradient, of up to 64 channels, is 64 KB.
constexpr int64_t kChunk = 1024;
constexpr int64_t kRun = 256;
// Tensors per head in the function's input list: conv weight, bn weight, bn bias, running mean
// and running variance.
constexpr size_t kHeadInputs = 5;
// Tensors saved per head after the input's parts: conv weight, bn weight, z, z's mean and invstd.
constexpr size_t kSavedPerHead = 5;

int64_t pixels_of(const at::Tensor& x) { return x.size(0) * x.size(2) * x.size(3); }
int64_t chunks_of(int64_t P) { return (P + kChunk - 1) / kChunk; }

const std::string kWhat = "pointwise conv + batch norm";

// One conv + batch norm reading the shared input.
struct Head {
  at::Tensor conv_weight;
  BatchNormArgs bn;
  int64_t outputs() const { return conv_weight.size(0); }
};

// The input as its channel parts (channel_parts.h; one part: the input itself).
struct FusedInputs {
  std::vector<at::Tensor> parts;
  std::vector<Head> heads;
  bool relu;
};

// A head's conv output z = a(x) wt (wt inputs x outputs) and its batch mean and biased variance.
struct HeadOutput {
  at::Tensor wt, z, mean, var;
};

// Every head's z and moments in one pass over x: each run of x is read once from memory, and
// each chunk's moments around its first pixel are gathered run by run, while the run of z is in
// cache.
template <typename T>
void conv_with_moments(const ChannelRows<T>& x, int64_t P, std::vector<HeadOutput>& heads) {
  const auto& k = nhwc_table<T>();
  const int64_t inputs = x.inputs(), chunks = chunks_of(P);
  struct Sums {
    int64_t outputs;
    std::vector<T> shift;
    std::vector<double> sum, sum_squares;
  };
  std::vector<Sums> sums;
  for (const HeadOutput& h : heads) {
    const int64_t outputs = h.z.size(1);
    sums.push_back({outputs, std::vector<T>(chunks * outputs),
                    std::vector<double>(chunks * outputs, 0.0),
                    std::vector<double>(chunks * outputs, 0.0)});
  }
  for_each_pixel_chunk(P, kChunk, [&](int64_t t, int64_t begin, int64_t end) {
    AlignedBuffer<T> staged(x.staging());
    for (int64_t b = begin; b < end; b += kRun) {
      const int64_t e = std::min(end, b + kRun);
      const T* rows = x.rows(b, e, staged.data());
      for (size_t h = 0; h < heads.size(); ++h) {
        Sums& s = sums[h];
        T* zp = heads[h].z.data_ptr<T>();
        k.pointwise(rows, heads[h].wt.data_ptr<T>(), zp + b * s.outputs, inputs, s.outputs, 0,
                    e - b, x.kernel_relu(), nullptr);
        T* shift = &s.shift[t * s.outputs];
        if (b == begin) std::copy(zp + b * s.outputs, zp + (b + 1) * s.outputs, shift);
        k.moments(zp, s.outputs, b, e, shift, &s.sum[t * s.outputs], &s.sum_squares[t * s.outputs]);
      }
    }
  });
  for (size_t h = 0; h < heads.size(); ++h)
    combine_groups(
        sums[h].shift, sums[h].sum, sums[h].sum_squares, chunks, sums[h].outputs,
        [&](int64_t t) { return std::min(P, (t + 1) * kChunk) - t * kChunk; }, heads[h].mean,
        heads[h].var);
}

// The forward; with ctx null (no autograd) each z is normalised in place and nothing is saved,
// with autograd so is each z whose batch norm keeps its output (keeps_normalized_output), and
// the output is saved in z's place.
template <typename T>
variable_list forward_typed(AutogradContext* ctx, const FusedInputs& in) {
  const at::Tensor& x = in.parts[0];  // for the batch, size and options
  const at::TensorOptions doubles = x.options().dtype(at::kDouble);
  std::vector<HeadOutput> outputs;
  for (const Head& h : in.heads) {
    outputs.push_back({transposed_weight<T>(h.conv_weight),
                       at::empty({x.size(0), h.outputs(), x.size(2), x.size(3)},
                                 x.options().memory_format(at::MemoryFormat::ChannelsLast)),
                       at::empty({h.outputs()}, doubles), at::empty({h.outputs()}, doubles)});
  }
  conv_with_moments<T>(ChannelRows<T>(in.parts, in.relu, kRun, nhwc_table<T>().gather_channels),
                       pixels_of(x), outputs);
  variable_list ys, saved = in.parts;
  std::vector<bool> normalized;
  for (size_t h = 0; h < in.heads.size(); ++h) {
    BatchMoments moments;
    HeadOutput& o = outputs[h];
    normalized.push_back(ctx && keeps_normalized_output(in.heads[h].bn));
    ys.push_back(normalize_with_moments(o.z, o.mean, o.var, in.heads[h].bn,
                                        ctx != nullptr && !normalized[h], &moments));
    const Head& head = in.heads[h];
    saved.insert(saved.end(),
                 {head.conv_weight, head.bn.weight, o.z, moments.mean, moments.invstd});
  }
  if (ctx) {
    ctx->save_for_backward(saved);
    ctx->saved_data["relu"] = in.relu;
    ctx->saved_data["parts"] = static_cast<int64_t>(in.parts.size());
    for (size_t h = 0; h < in.heads.size(); ++h)
      ctx->saved_data["normalized" + std::to_string(h)] = static_cast<bool>(normalized[h]);
  }
  return ys;
}

// A head in the backward: its saved tensors, its output's gradient and the batch norm's
// backward map; its columns [offset, offset + outputs) in the heads' joint gradient rows.
template <typename T>
struct HeadGrad {
  at::Tensor conv_weight, bn_weight, z, gy;
  NormalizeBackwardMap map;
  std::vector<T> a, b, c0;
  int64_t outputs = 0, offset = 0;
};

// One part of the input in the backward (one: the whole input): its rows, the heads' stacked
// weight columns that read it, its gradient (laid out as the part, so no reader slices a joint
// one) and its per-chunk weight-gradient partials.
template <typename T>
struct PartGrad {
  const T* x;
  int64_t channels;
  at::Tensor w, gx, gw_chunks;
};

// The heads with an output gradient (an unused output has none) hold the joint rows of z's
// gradients gz (pixels x their outputs together); then each part's gradient is one pointwise
// conv of gz with the heads' weights stacked, so it is written once for all heads, and the
// conv weights' gradients one product of each part with gz.
template <typename T>
variable_list backward_typed(AutogradContext* ctx, const variable_list& grads) {
  const auto saved = ctx->get_saved_variables();
  const size_t part_count = static_cast<size_t>(ctx->saved_data["parts"].toInt());
  const std::vector<at::Tensor> parts(saved.begin(), saved.begin() + part_count);
  const bool relu = ctx->saved_data["relu"].toBool();
  const auto& k = nhwc_table<T>();
  const int64_t P = pixels_of(parts[0]), inputs = channels_of(parts);
  const size_t head_count = grads.size();
  std::vector<HeadGrad<T>> heads;
  std::vector<size_t> head_of;  // index into `heads` per function head, or head_count: unused
  int64_t joint = 0;
  for (size_t h = 0; h < head_count; ++h) {
    head_of.push_back(head_count);
    if (!grads[h].defined()) continue;
    HeadGrad<T> g;
    const at::Tensor* head_saved = &saved[part_count + kSavedPerHead * h];
    g.conv_weight = head_saved[0];
    g.bn_weight = head_saved[1];
    g.z = head_saved[2];
    g.gy = grads[h].contiguous(at::MemoryFormat::ChannelsLast);
    const BatchMoments moments{head_saved[3], head_saved[4]};
    // z or, normalised in its place, the output (keeps_normalized_output).
    g.map = ctx->saved_data["normalized" + std::to_string(h)].toBool()
                ? normalized_output_backward_map(g.z, g.gy, moments)
                : batch_norm_backward_map(g.z, g.gy, moments, g.bn_weight);
    g.a = values_of<T>(g.map.a);
    g.b = values_of<T>(g.map.b);
    g.c0 = values_of<T>(g.map.c0);
    g.outputs = g.z.size(1);
    g.offset = joint;
    joint += g.outputs;
    head_of.back() = heads.size();
    heads.push_back(std::move(g));
  }
  // An architecture step wants no weight gradient; a network's first layer no input gradient.
  bool want_w = false;
  for (size_t h = 0; h < head_count; ++h)
    want_w |= head_of[h] < head_count && ctx->needs_input_grad(part_count + kHeadInputs * h);
  bool want_x = false;
  for (size_t i = 0; i < part_count; ++i) want_x |= ctx->needs_input_grad(i) && joint > 0;
  std::vector<at::Tensor> weight_rows;
  for (const HeadGrad<T>& g : heads)
    weight_rows.push_back(g.conv_weight.reshape({g.outputs, inputs}));
  const std::vector<at::Tensor> w =
      want_x ? part_columns(at::cat(weight_rows, 0), parts) : std::vector<at::Tensor>();
  std::vector<PartGrad<T>> part_grads;
  for (size_t i = 0; i < part_count; ++i) {
    const at::Tensor& part = parts[i];
    PartGrad<T> pg{part.data_ptr<T>(), part.size(1), {}, {}, {}};
    if (want_x) {
      pg.w = w[i];
      pg.gx = at::empty_like(part);
    }
    if (want_w) pg.gw_chunks = at::zeros({chunks_of(P), joint * pg.channels}, part.options());
    part_grads.push_back(std::move(pg));
  }
  const bool stream = P * inputs * static_cast<int64_t>(sizeof(T)) >= kStreamBytes;
  const auto input_grads = stream ? k.pointwise_streamed : k.pointwise;
  if (want_x || want_w) {
    for_each_pixel_chunk(P, kChunk, [&](int64_t t, int64_t begin, int64_t end) {
      AlignedBuffer<T> gz(kRun * joint, /*zeroed=*/true);  // the batch norms' input gradients
      AlignedBuffer<T> head_gz(heads.size() > 1 ? kRun * joint : 0, /*zeroed=*/true);
      for (int64_t p = begin; p < end; p += kRun) {
        const int64_t pixels = std::min(end - p, kRun);
        for (const HeadGrad<T>& g : heads) {
          const int64_t z_at = p * g.outputs;
          T* out = heads.size() > 1 ? head_gz.data() : gz.data();
          k.normalize_backward(g.z.template data_ptr<T>() + z_at,
                               g.gy.template data_ptr<T>() + z_at, out, g.outputs, 0, pixels,
                               g.a.data(), g.b.data(), g.c0.data());
          if (heads.size() > 1)
            for (int64_t i = 0; i < pixels; ++i)
              std::copy(out + i * g.outputs, out + (i + 1) * g.outputs,
                        gz.data() + i * joint + g.offset);
        }
        for (PartGrad<T>& pg : part_grads) {
          const T* x = pg.x + p * pg.channels;
          // Through the fused ReLU the input gradient passes where x > 0.
          if (want_x)
            input_grads(gz.data(), pg.w.template data_ptr<T>(),
                        pg.gx.template data_ptr<T>() + p * pg.channels, joint, pg.channels, 0,
                        pixels, false, relu ? x : nullptr);
          if (want_w)
            k.pointwise_wgrad(x, gz.data(),
                              pg.gw_chunks.template data_ptr<T>() + t * joint * pg.channels,
                              pg.channels, joint, 0, pixels, relu);
        }
      }
    });
  }
  at::Tensor gw;
  if (want_w) {
    std::vector<at::Tensor> columns;
    for (const PartGrad<T>& pg : part_grads)
      columns.push_back(pg.gw_chunks.sum(0).view({joint, pg.channels}));
    gw = kernels::joined_channels(columns);
  }
  variable_list out;
  for (const PartGrad<T>& pg : part_grads) out.push_back(pg.gx);
  for (size_t h = 0; h < head_count; ++h) {
    if (head_of[h] == head_count) {
      out.resize(out.size() + kHeadInputs);
      continue;
    }
    const HeadGrad<T>& g = heads[head_of[h]];
    const bool has_bias = ctx->saved_data["has_bias" + std::to_string(h)].toBool();
    out.push_back(want_w ? gw.slice(0, g.offset, g.offset + g.outputs).view(g.conv_weight.sizes())
                         : at::Tensor());
    out.push_back(weight_grad_of(g.map, g.bn_weight));
    out.push_back(bias_grad_of(g.map, has_bias, parts[0].scalar_type()));
    out.resize(out.size() + 2);  // the running statistics
  }
  out.resize(out.size() + 3);  // momenta, eps, relu
  return out;
}

// The heads of a function's input list: kHeadInputs tensors each (conv weight, bn weight, bn
// bias, running mean, running variance; absent ones empty), with each head's momentum and eps.
std::vector<Head> heads_of(at::TensorList tensors, const std::vector<double>& momenta,
                           const std::vector<double>& eps) {
  std::vector<Head> heads;
  for (size_t h = 0; h < momenta.size(); ++h) {
    const at::Tensor* t = &tensors[kHeadInputs * h];
    heads.push_back({t[0], {t[1], t[2], t[3], t[4], momenta[h], eps[h]}});
  }
  return heads;
}

FusedInputs checked(at::TensorList parts, std::vector<Head> heads, bool relu) {
  check_channel_parts(parts, kWhat);
  std::vector<at::Tensor> laid_out;
  for (const at::Tensor& part : parts) {
    if (!nhwc_float_cpu(part))
      throw Error(kWhat + ": expected a channels-last float/double CPU input");
    laid_out.push_back(part.contiguous(at::MemoryFormat::ChannelsLast));
  }
  const at::Tensor& x = parts[0];
  for (const Head& h : heads) {
    const at::Tensor& w = h.conv_weight;
    if (w.dim() != 4 || w.size(1) != channels_of(parts) || w.size(2) != 1 || w.size(3) != 1 ||
        w.scalar_type() != x.scalar_type())
      throw Error(kWhat + ": expected a (outputs, C, 1, 1) weight of x's dtype");
    check_batch_norm_args(h.bn, h.outputs(), pixels_of(x), kWhat);
  }
  return {std::move(laid_out), std::move(heads), relu};
}

// parts: the input's channel parts; tensors, momenta and eps: the heads as heads_of reads them.
struct PointwiseConvBNFunction : public torch::autograd::Function<PointwiseConvBNFunction> {
  static variable_list forward(AutogradContext* ctx, at::TensorList parts, at::TensorList tensors,
                               std::vector<double> momenta, std::vector<double> eps, bool relu) {
    std::vector<Head> heads = heads_of(tensors, momenta, eps);
    for (size_t h = 0; h < heads.size(); ++h)
      ctx->saved_data["has_bias" + std::to_string(h)] = present(heads[h].bn.bias);
    const FusedInputs in = checked(parts, std::move(heads), relu);
    // An output nobody used has no gradient: its head is left out of the backward.
    ctx->set_materialize_grads(false);
    return in.parts[0].scalar_type() == at::kFloat ? forward_typed<float>(ctx, in)
                                                   : forward_typed<double>(ctx, in);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return ctx->get_saved_variables()[0].scalar_type() == at::kFloat
               ? backward_typed<float>(ctx, grads)
               : backward_typed<double>(ctx, grads);
  }
};

variable_list apply_heads(const std::vector<at::Tensor>& parts,
                          const std::vector<PointwiseHead>& heads, bool relu_input) {
  const at::Tensor& x = parts[0];
  std::vector<at::Tensor> tensors;
  std::vector<double> momenta, eps;
  for (const PointwiseHead& h : heads) {
    torch::nn::BatchNorm2dImpl& bn = *h.bn;
    tensors.insert(tensors.end(), {h.conv_weight, or_empty(bn.weight, x), or_empty(bn.bias, x),
                                   or_empty(bn.running_mean, x), or_empty(bn.running_var, x)});
    momenta.push_back(next_momentum(bn));
    eps.push_back(bn.options.eps());
  }
  // TensorLists, not the vectors: Function::apply takes only those as lists of inputs.
  if (at::GradMode::is_enabled())
    return PointwiseConvBNFunction::apply(at::TensorList(parts), at::TensorList(tensors), momenta,
                                          eps, relu_input);
  const FusedInputs in = checked(parts, heads_of(tensors, momenta, eps), relu_input);
  return x.scalar_type() == at::kFloat ? forward_typed<float>(nullptr, in)
                                       : forward_typed<double>(nullptr, in);
}

bool fusable(const PointwiseHead& head, const at::Tensor& x) {
  return uses_batch_statistics(*head.bn) && head.conv_weight.scalar_type() == x.scalar_type();
}

}  // namespace

at::Tensor native_pointwise_conv_bn_train(const at::Tensor& x, const at::Tensor& conv_weight,
                                          const at::Tensor& bn_weight, const at::Tensor& bn_bias,
                                          const at::Tensor& running_mean,
                                          const at::Tensor& running_var, double momentum,
                                          double eps, bool relu_input) {
  const std::vector<at::Tensor> tensors = {conv_weight, or_empty(bn_weight, x),
                                           or_empty(bn_bias, x), or_empty(running_mean, x),
                                           or_empty(running_var, x)};
  return PointwiseConvBNFunction::apply(at::TensorList(x), at::TensorList(tensors),
                                        std::vector<double>{momentum}, std::vector<double>{eps},
                                        relu_input)[0];
}

at::Tensor pointwise_conv_batch_norm(torch::nn::BatchNorm2dImpl& bn, const at::Tensor& x,
                                     const at::Tensor& conv_weight, bool relu_input) {
  return pointwise_conv_batch_norms({{&bn, conv_weight}}, {x}, relu_input)[0];
}

std::vector<at::Tensor> pointwise_conv_batch_norms(const std::vector<PointwiseHead>& heads,
                                                   const std::vector<at::Tensor>& parts,
                                                   bool relu_input) {
  check_channel_parts(parts, kWhat);
  bool fused = true;
  for (const at::Tensor& part : parts) fused = fused && nhwc_float_cpu(part);
  for (const PointwiseHead& h : heads) fused = fused && fusable(h, parts[0]);
  if (fused) return apply_heads(parts, heads, relu_input);
  const at::Tensor x = joined_channels(parts);
  std::vector<at::Tensor> ys;
  for (const PointwiseHead& h : heads)
    ys.push_back(batch_norm_forward(*h.bn, native_pointwise_conv2d(x, h.conv_weight, relu_input),
                                    KernelBackend::kNative));
  return ys;
}

}  // namespace datanas
