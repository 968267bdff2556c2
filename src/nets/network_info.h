// Size and cost of an evaluation network, as JSON:
//   {"params": N (without the auxiliary head, the number papers report),
//    "params_auxiliary": N (with it),
//    "macs": multiply-adds of one inference forward at input_size x input_size,
//    "input_size": S,
//    "cells": [{"index", "reduction", "channels" (per node), "output_channels", "params",
//               "macs"}, ...]}
// MACs count convolutions (out_elements * (c_in / groups) * kh * kw) and linear layers
// (in * out) only; BN, ReLU, pooling and additions are not counted, nor the auxiliary head
// (it runs in training only). They come from one eval-mode forward of a zero batch of one
// image, so they follow the real output shapes.
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

#include "nets/network.h"
#include "space/genotype.h"

namespace datanas {

// Builds the network (with the auxiliary head, to count it; `options.auxiliary` is ignored).
// Throws Error for a bad genotype, bad options, or an input size the network cannot take.
nlohmann::json network_info(const Genotype& genotype, const NetworkOptions& options,
                            int64_t input_size);

}  // namespace datanas
