// CIFAR-10 / CIFAR-100 "binary version" files: fixed-size records of label byte(s) followed by
// 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32x32 row-major, i.e. already CHW).
//   CIFAR-10:  1 label byte;  train DIR/data_batch_{1..5}.bin, test DIR/test_batch.bin
//   CIFAR-100: 2 label bytes (coarse, fine; the fine label is used); DIR/train.bin, DIR/test.bin
// DIR may also be the folder above the archive's own cifar-10-batches-bin/ or cifar-100-binary/.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/image_set.h"

namespace datanas {

constexpr int64_t kCifarImageBytes = 3 * 32 * 32;

// Reads records from `paths` in order; `label_bytes` is 1 (CIFAR-10) or 2 (CIFAR-100, the last
// byte is the label kept). `limit` > 0 stops after that many images. Throws Error naming the
// file when it cannot be read, its size is not a whole number of records or a label is not in
// [0, classes).
ImageSet read_cifar_records(const std::vector<std::string>& paths, int label_bytes, int classes,
                            int64_t limit = 0);

// The files of a split, after resolving the archive's sub-folder; `classes` is 10 or 100.
std::vector<std::string> cifar_files(const std::string& dir, int classes, bool train);

// A one-line description of the expected layout, for error messages.
std::string cifar_layout(int classes);

// The whole split; a missing file gives an Error naming it and the expected layout.
ImageSet read_cifar(const std::string& dir, int classes, bool train, int64_t limit = 0);

}  // namespace datanas
