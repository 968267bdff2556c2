#include "nets/network.h"

#include <ATen/ATen.h>

#include "nets/supernet.h"
#include "space/op_blocks.h"
#include "util/error.h"
#include "util/memory_format.h"

namespace datanas {
namespace nn = torch::nn;

namespace {

nn::Conv2d conv(int64_t c_in, int64_t c_out, int64_t kernel, int64_t stride, int64_t padding) {
  return nn::Conv2d(
      nn::Conv2dOptions(c_in, c_out, kernel).stride(stride).padding(padding).bias(false));
}

}  // namespace

void validate_network_options(const NetworkOptions& o) {
  if (o.kind != "cifar" && o.kind != "imagenet") {
    throw Error("network kind \"" + o.kind + "\" is unknown (expected cifar or imagenet)");
  }
  if (o.input_channels < 1) throw Error("network input channels must be at least 1");
  if (o.init_channels < 2) throw Error("network init channels must be at least 2");
  if (o.layers < 1) throw Error("network layers must be at least 1");
  if (o.classes < 1) throw Error("network classes must be at least 1");
  if (!(o.drop_path >= 0.0 && o.drop_path < 1.0)) {
    throw Error("drop-path probability " + std::to_string(o.drop_path) +
                " is out of range (expected 0 <= p < 1)");
  }
}

AuxiliaryHeadImpl::AuxiliaryHeadImpl(int64_t channels, int classes, int64_t pool_stride,
                                     bool second_bn)
    : pool_stride_(pool_stride),
      conv1_(register_module("conv1", conv(channels, 128, 1, 1, 0))),
      conv2_(register_module("conv2", conv(128, 768, 2, 1, 0))),
      bn1_(register_module("bn1", make_batch_norm(128, true))),
      classifier_(register_module("classifier", nn::Linear(768, classes))) {
  if (second_bn) bn2_ = register_module("bn2", make_batch_norm(768, true));
}

at::Tensor AuxiliaryHeadImpl::forward(const at::Tensor& x, MacCounter* counter) {
  at::Tensor y = at::relu(x);
  const int64_t h = y.size(2), w = y.size(3);
  const bool fixed_pool_fits =
      h >= 5 && w >= 5 && (h - 5) / pool_stride_ + 1 == 2 && (w - 5) / pool_stride_ + 1 == 2;
  if (fixed_pool_fits) {
    y = at::avg_pool2d(y, {5, 5}, {pool_stride_, pool_stride_}, {0, 0}, /*ceil_mode=*/false,
                       /*count_include_pad=*/false);
  } else {
    y = at::adaptive_avg_pool2d(y, {2, 2});
  }
  y = conv1_(y);
  if (counter) counter->add_conv(*conv1_, y);
  y = at::relu(bn1_(y));
  y = conv2_(y);
  if (counter) counter->add_conv(*conv2_, y);
  if (bn2_) y = bn2_(y);
  y = at::relu(y);
  if (counter) counter->add_block(*classifier_, y);
  return classifier_(y.flatten(1));
}

NetworkImpl::NetworkImpl(const Genotype& genotype, const NetworkOptions& options)
    : options_(options) {
  validate_network_options(options);
  validate_genotype(genotype);
  const int64_t C = options.init_channels;
  int64_t c_prev_prev = 0, c_prev = 0;
  bool reduction_prev = false;
  if (options.kind == "cifar") {
    const int64_t stem_channels = 3 * C;
    stem_conv0_ =
        register_module("stem_conv", conv(options.input_channels, stem_channels, 3, 1, 1));
    stem_bn0_ = register_module("stem_bn", make_batch_norm(stem_channels, true));
    c_prev_prev = c_prev = stem_channels;
  } else {
    stem_conv0_ = register_module("stem0_conv0", conv(options.input_channels, C / 2, 3, 2, 1));
    stem_bn0_ = register_module("stem0_bn0", make_batch_norm(C / 2, true));
    stem_conv1_ = register_module("stem0_conv1", conv(C / 2, C, 3, 2, 1));
    stem_bn1_ = register_module("stem0_bn1", make_batch_norm(C, true));
    stem_conv2_ = register_module("stem1_conv", conv(C, C, 3, 2, 1));
    stem_bn2_ = register_module("stem1_bn", make_batch_norm(C, true));
    c_prev_prev = c_prev = C;
    reduction_prev = true;
  }
  int64_t c_curr = C;
  int64_t c_auxiliary = 0;
  for (int i = 0; i < options.layers; ++i) {
    const bool reduction = is_reduction_layer(i, options.layers);
    if (reduction) c_curr *= 2;
    DiscreteCellOptions cell_options;
    cell_options.channels_prev_prev = c_prev_prev;
    cell_options.channels_prev = c_prev;
    cell_options.channels = c_curr;
    cell_options.reduction = reduction;
    cell_options.reduction_prev = reduction_prev;
    cell_options.kernels = options.kernels;
    cell_options.supernet_ops = options.supernet_ops;
    cells_.push_back(
        register_module("cell" + std::to_string(i), DiscreteCell(genotype, cell_options)));
    reduction_prev = reduction;
    c_prev_prev = c_prev;
    c_prev = cells_.back()->output_channels();
    if (i == auxiliary_layer()) c_auxiliary = c_prev;
  }
  if (options.auxiliary) {
    const bool cifar = options.kind == "cifar";
    auxiliary_head_ = register_module(
        "auxiliary_head",
        AuxiliaryHead(c_auxiliary, options.classes, cifar ? 3 : 2, /*second_bn=*/cifar));
  }
  classifier_ = register_module("classifier", nn::Linear(c_prev, options.classes));
  set_memory_format(*this, options.channels_last);
}

void NetworkImpl::set_drop_path(double drop_prob) {
  NetworkOptions changed = options_;
  changed.drop_path = drop_prob;
  validate_network_options(changed);
  options_.drop_path = drop_prob;
}

at::Tensor NetworkImpl::stem(const at::Tensor& images, at::Tensor* s0, MacCounter* counter) {
  auto run = [&](nn::Conv2d& c, const at::Tensor& x) {
    // In the layout even from a 1-channel image, which LibTorch's conv turns into NCHW.
    at::Tensor y = in_memory_format(c(x), options_.channels_last);
    if (counter) counter->add_conv(*c, y);
    return y;
  };
  if (options_.kind == "cifar") {
    *s0 = stem_bn0_(run(stem_conv0_, images));
    return *s0;
  }
  at::Tensor x = at::relu(stem_bn0_(run(stem_conv0_, images)));
  *s0 = stem_bn1_(run(stem_conv1_, x));
  return stem_bn2_(run(stem_conv2_, at::relu(*s0)));
}

NetworkOutput NetworkImpl::forward(const at::Tensor& images) {
  return forward_counted(images, nullptr);
}

NetworkOutput NetworkImpl::forward_counted(const at::Tensor& images, MacCounter* counter,
                                           std::vector<int64_t>* cell_macs) {
  if (images.dim() != 4 || images.size(1) != options_.input_channels) {
    throw Error("network input must be (N, " + std::to_string(options_.input_channels) +
                ", H, W), got " + std::to_string(images.dim()) + " dimensions" +
                (images.dim() >= 2 ? " with " + std::to_string(images.size(1)) + " channels"
                                   : std::string()));
  }
  MacCounter local;
  if (cell_macs && !counter) counter = &local;
  if (cell_macs) cell_macs->clear();
  NetworkOutput out;
  at::Tensor s0;
  at::Tensor s1 = stem(in_memory_format(images, options_.channels_last), &s0, counter);
  const double drop_prob = options_.drop_path;
  for (size_t i = 0; i < cells_.size(); ++i) {
    const int64_t before = counter ? counter->macs : 0;
    at::Tensor next = cells_[i]->forward(s0, s1, drop_prob, counter);
    if (cell_macs) cell_macs->push_back(counter->macs - before);
    s0 = s1;
    s1 = next;
    if (static_cast<int>(i) == auxiliary_layer() && auxiliary_head_ && is_training()) {
      out.aux_logits = auxiliary_head_->forward(s1, counter);
    }
  }
  at::Tensor pooled = at::adaptive_avg_pool2d(s1, {1, 1}).flatten(1);
  out.logits = classifier_(pooled);
  if (counter) counter->add_block(*classifier_, out.logits);
  return out;
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) total += p.numel();
  return total;
}

int64_t count_parameters_without_auxiliary(const NetworkImpl& network) {
  int64_t total = count_parameters(network);
  if (network.auxiliary_head()) total -= count_parameters(*network.auxiliary_head());
  return total;
}

}  // namespace datanas
