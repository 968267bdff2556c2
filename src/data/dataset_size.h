// What loading a data set will cost, from the files' headers and sizes alone (nothing is read
// beyond them), so a run can refuse one that would not fit in memory before loading it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace datanas {

struct DatasetSize {
  int64_t images = 0;       // after --limit
  int64_t image_bytes = 0;  // channels * height * width
  uint64_t read_bytes = 0;  // bytes the reader holds at once (a whole decompressed IDX file)
  // Peak while loading plus the loaders' float copies: what a run holds for this split.
  uint64_t memory_bytes() const;
};

// nullopt when the files cannot be found or read: loading then reports the problem itself.
std::optional<DatasetSize> probe_dataset(const std::string& name, const std::string& dir,
                                         bool train, int64_t limit);

}  // namespace datanas
