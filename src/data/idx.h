// IDX files (the MNIST / Fashion-MNIST format), raw or gzip-compressed: a big-endian header
// (magic 0x00000803 for images with count, rows, cols; 0x00000801 for labels with count) and
// then one byte per pixel or label.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image_set.h"

namespace datanas {

constexpr uint32_t kIdxImagesMagic = 0x00000803;
constexpr uint32_t kIdxLabelsMagic = 0x00000801;

// Whole file contents, gunzipped when the file is gzip (a raw file is read as is), but never
// more than max_bytes + 1 bytes (a longer file returns exactly that many). Throws Error naming
// the path when it cannot be opened or decompressed.
std::string read_maybe_gzip_file(const std::string& path, uint64_t max_bytes = UINT64_MAX);

// `limit` > 0 keeps only the first `limit` entries. The returned set has channels = 1 and no
// labels. Throws Error naming the path for a wrong magic, bad dims or a size that does not match
// the header.
ImageSet read_idx_images(const std::string& path, int64_t limit = 0);
std::vector<int64_t> read_idx_labels(const std::string& path, int64_t limit = 0);

// Images with their labels; the counts must agree and every label must be in [0, classes).
ImageSet read_idx_pair(const std::string& images_path, const std::string& labels_path,
                       int64_t limit = 0, int classes = 10);

}  // namespace datanas
