#include "data/dataset_size.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>

#include "data/cifar.h"
#include "data/datasets.h"

namespace datanas {
namespace fs = std::filesystem;

namespace {

// The 16-byte header of an IDX images file, raw or gzipped.
std::optional<DatasetSize> probe_idx(const std::string& dir, bool train, int64_t limit) {
  const fs::path base =
      fs::path(dir) / (std::string(train ? "train" : "t10k") + "-images-idx3-ubyte");
  std::string path = base.string();
  if (!fs::is_regular_file(path)) path += ".gz";
  if (!fs::is_regular_file(path)) return std::nullopt;
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) return std::nullopt;
  unsigned char header[16];
  const int n = gzread(file, header, sizeof header);
  gzclose(file);
  if (n != 16) return std::nullopt;
  auto be32 = [&](int at) {
    return uint64_t{header[at]} << 24 | uint64_t{header[at + 1]} << 16 |
           uint64_t{header[at + 2]} << 8 | uint64_t{header[at + 3]};
  };
  if (be32(8) > 65536 || be32(12) > 65536) return std::nullopt;  // the reader refuses these
  const uint64_t count = be32(4), pixels = be32(8) * be32(12);
  DatasetSize size;
  size.images = static_cast<int64_t>(limit > 0 ? std::min<uint64_t>(count, limit) : count);
  size.image_bytes = static_cast<int64_t>(pixels);
  size.read_bytes = 16 + count * pixels;
  return size;
}

std::optional<DatasetSize> probe_cifar(const std::string& dir, int classes, bool train,
                                       int64_t limit) {
  const int64_t record = (classes == 10 ? 1 : 2) + kCifarImageBytes;
  DatasetSize size;
  size.image_bytes = kCifarImageBytes;
  for (const std::string& file : cifar_files(dir, classes, train)) {
    std::error_code ec;
    const uint64_t bytes = fs::file_size(file, ec);
    if (ec) return std::nullopt;
    int64_t records = static_cast<int64_t>(bytes / record);
    if (limit > 0) records = std::min(records, std::max<int64_t>(0, limit - size.images));
    size.images += records;
    size.read_bytes = std::max<uint64_t>(size.read_bytes, records * record);
  }
  return size;
}

}  // namespace

uint64_t DatasetSize::memory_bytes() const {
  const uint64_t pixels = static_cast<uint64_t>(images) * image_bytes;
  // The reader's buffer, the uint8 pixels, float32 normalised copies, labels (int64 twice).
  return read_bytes + pixels + 4 * pixels + 16 * static_cast<uint64_t>(images);
}

std::optional<DatasetSize> probe_dataset(const std::string& name, const std::string& dir,
                                         bool train, int64_t limit) {
  try {
    const DatasetInfo& info = dataset_info(name);
    const std::string root = dir.empty() ? info.default_dir : dir;
    if (root.empty() || !fs::is_directory(root)) return std::nullopt;
    if (info.name == "cifar10" || info.name == "cifar100")
      return probe_cifar(root, info.classes, train, limit);
    return probe_idx(root, train, limit);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace datanas
