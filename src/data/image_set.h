// A labelled image set as read from disk: uint8 pixels in N x C x H x W order, no torch needed,
// so readers stay small, fast to build and easy to fuzz.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace datanas {

struct ImageSet {
  int64_t count = 0, channels = 0, height = 0, width = 0;
  int classes = 0;
  std::vector<uint8_t> pixels;  // count * channels * height * width
  std::vector<int64_t> labels;  // count, each in [0, classes)
};

}  // namespace datanas
