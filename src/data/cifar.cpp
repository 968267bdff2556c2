#include "data/cifar.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "util/error.h"

namespace datanas {
namespace fs = std::filesystem;

namespace {

void check_classes(int classes) {
  if (classes != 10 && classes != 100) {
    throw Error("CIFAR has 10 or 100 classes, not " + std::to_string(classes));
  }
}

}  // namespace

ImageSet read_cifar_records(const std::vector<std::string>& paths, int label_bytes, int classes,
                            int64_t limit) {
  if (label_bytes != 1 && label_bytes != 2) {
    throw Error("CIFAR records have 1 or 2 label bytes, not " + std::to_string(label_bytes));
  }
  const int64_t record = label_bytes + kCifarImageBytes;
  ImageSet set;
  set.channels = 3;
  set.height = set.width = 32;
  set.classes = classes;
  std::vector<char> buffer;
  for (const std::string& path : paths) {
    if (limit > 0 && set.count >= limit) break;
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec) throw Error(path + ": cannot open file (" + ec.message() + ")");
    if (size == 0 || size % record != 0) {
      throw Error(path + ": size " + std::to_string(size) +
                  " bytes is not a whole number of CIFAR records of " + std::to_string(record) +
                  " bytes");
    }
    int64_t records = static_cast<int64_t>(size) / record;
    if (limit > 0) records = std::min(records, limit - set.count);
    std::ifstream in(path, std::ios::binary);
    buffer.resize(static_cast<size_t>(records * record));
    if (!in || !in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()))) {
      throw Error(path + ": cannot read file");
    }
    set.pixels.reserve(set.pixels.size() + static_cast<size_t>(records * kCifarImageBytes));
    for (int64_t r = 0; r < records; ++r) {
      const auto* rec = reinterpret_cast<const uint8_t*>(buffer.data()) + r * record;
      const int64_t label = rec[label_bytes - 1];
      if (label >= classes) {
        throw Error(path + ": label " + std::to_string(label) + " of record " + std::to_string(r) +
                    " is outside [0, " + std::to_string(classes) + ")");
      }
      set.labels.push_back(label);
      set.pixels.insert(set.pixels.end(), rec + label_bytes, rec + record);
    }
    set.count += records;
  }
  return set;
}

std::vector<std::string> cifar_files(const std::string& dir, int classes, bool train) {
  check_classes(classes);
  fs::path base(dir);
  const char* sub = classes == 10 ? "cifar-10-batches-bin" : "cifar-100-binary";
  if (fs::is_directory(base / sub)) base /= sub;
  std::vector<std::string> files;
  if (classes == 100) {
    files.push_back((base / (train ? "train.bin" : "test.bin")).string());
  } else if (train) {
    for (int i = 1; i <= 5; ++i) {
      files.push_back((base / ("data_batch_" + std::to_string(i) + ".bin")).string());
    }
  } else {
    files.push_back((base / "test_batch.bin").string());
  }
  return files;
}

std::string cifar_layout(int classes) {
  check_classes(classes);
  return classes == 10
             ? "expected CIFAR-10 binary version: DIR/data_batch_{1..5}.bin and "
               "DIR/test_batch.bin (or the same under DIR/cifar-10-batches-bin/)"
             : "expected CIFAR-100 binary version: DIR/train.bin and DIR/test.bin (or the same "
               "under DIR/cifar-100-binary/)";
}

ImageSet read_cifar(const std::string& dir, int classes, bool train, int64_t limit) {
  const std::vector<std::string> files = cifar_files(dir, classes, train);
  for (const std::string& file : files) {
    if (!fs::is_regular_file(file)) throw Error(file + ": not found; " + cifar_layout(classes));
  }
  return read_cifar_records(files, classes == 10 ? 1 : 2, classes, limit);
}

}  // namespace datanas
