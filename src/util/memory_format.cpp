#include "util/memory_format.h"

#include <ATen/ATen.h>

namespace datanas {

std::string memory_format_name(bool channels_last) {
  return channels_last ? "channels-last" : "nchw";
}

void set_memory_format(torch::nn::Module& module, bool channels_last) {
  const auto format = channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  at::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(format));
}

at::Tensor in_memory_format(const at::Tensor& images, bool channels_last) {
  if (images.dim() != 4) return images;
  return images.contiguous(channels_last ? at::MemoryFormat::ChannelsLast
                                         : at::MemoryFormat::Contiguous);
}

}  // namespace datanas
