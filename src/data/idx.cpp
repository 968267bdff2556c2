#include "data/idx.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "util/error.h"

namespace datanas {
namespace {

uint32_t read_be32(const std::string& data, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data()) + offset;
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex(uint32_t value) {
  char buffer[16];
  std::snprintf(buffer, sizeof(buffer), "0x%08x", value);
  return buffer;
}

// Checks the magic and returns the header's dimensions; `dims` of them follow the magic.
std::vector<uint64_t> read_header(const std::string& path, const std::string& data, uint32_t magic,
                                  int dims, const char* what) {
  if (data.size() >= 4 && read_be32(data, 0) != magic) {
    throw Error(path + ": not an IDX " + what + " file (magic " + hex(read_be32(data, 0)) +
                ", expected " + hex(magic) + ")");
  }
  const size_t header_size = 4 * (1 + static_cast<size_t>(dims));
  if (data.size() < header_size) {
    throw Error(path + ": truncated IDX " + what + " file (" + std::to_string(data.size()) +
                " bytes, the header alone needs " + std::to_string(header_size) + ")");
  }
  std::vector<uint64_t> result;
  for (int i = 0; i < dims; ++i) result.push_back(read_be32(data, 4 + 4 * i));
  return result;
}

void check_size(const std::string& path, const std::string& data, uint64_t header_size,
                uint64_t payload_size, const char* what) {
  const uint64_t expected = header_size + payload_size;
  // read_bounded stops one byte past `expected`, so a longer file shows as expected + 1.
  if (data.size() > expected) {
    throw Error(path + ": IDX " + what + " file is longer than the " + std::to_string(expected) +
                " bytes its header announces (trailing bytes)");
  }
  if (data.size() < expected) {
    throw Error(path + ": IDX " + what + " file has " + std::to_string(data.size()) +
                " bytes but its header announces " + std::to_string(expected) + " (truncated)");
  }
}

int64_t kept(uint64_t count, int64_t limit) {
  return limit > 0 && static_cast<uint64_t>(limit) < count ? limit : static_cast<int64_t>(count);
}

// gzerror's message starts with the path itself; keep only the reason.
std::string gz_reason(gzFile file, const std::string& path, int* code) {
  std::string message = gzerror(file, code);
  if (message.rfind(path + ": ", 0) == 0) message.erase(0, path.size() + 2);
  return message;
}

// The header first (at most 17 bytes), then the file up to what the header announces plus one
// byte: a small .gz that inflates to far more than its header says (a "gzip bomb") is refused
// after reading one byte too many, not after filling memory.
std::string read_idx_file(const std::string& path, uint32_t magic, int dims, const char* what,
                          uint64_t element_bytes_per_count, std::vector<uint64_t>* header) {
  const size_t header_size = 4 * (1 + static_cast<size_t>(dims));
  *header = read_header(path, read_maybe_gzip_file(path, header_size), magic, dims, what);
  uint64_t per_item = 1;
  for (int i = 1; i < dims; ++i) per_item *= (*header)[i];
  if (per_item == 0 || per_item > element_bytes_per_count) return std::string(header_size, '\0');
  return read_maybe_gzip_file(path, header_size + (*header)[0] * per_item);
}

}  // namespace

std::string read_maybe_gzip_file(const std::string& path, uint64_t max_bytes) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) throw Error(path + ": cannot open file (" + std::strerror(errno) + ")");
  gzbuffer(file, 1 << 17);
  std::string data;
  char buffer[1 << 16];
  while (true) {
    const int n = gzread(file, buffer, sizeof(buffer));
    if (n < 0) {
      int code = 0;
      const std::string message = gz_reason(file, path, &code);
      gzclose(file);
      throw Error(path + ": cannot read file (" + message + ")");
    }
    if (n == 0) break;
    data.append(buffer, static_cast<size_t>(n));
    if (data.size() > max_bytes) {
      data.resize(max_bytes + 1);
      gzclose(file);
      return data;
    }
  }
  int code = Z_OK;
  const std::string message = gz_reason(file, path, &code);
  gzclose(file);
  // A gzip stream cut short reads as a clean end of file with Z_BUF_ERROR left behind.
  if (code != Z_OK) throw Error(path + ": cannot read file (" + message + ")");
  return data;
}

ImageSet read_idx_images(const std::string& path, int64_t limit) {
  std::vector<uint64_t> dims;
  const std::string data =
      read_idx_file(path, kIdxImagesMagic, 3, "images", uint64_t{65536} * 65536, &dims);
  const uint64_t count = dims[0], rows = dims[1], cols = dims[2];
  if (rows == 0 || cols == 0 || rows > 65536 || cols > 65536) {
    throw Error(path + ": bad IDX image size " + std::to_string(rows) + "x" + std::to_string(cols));
  }
  // count < 2^32 and rows * cols <= 2^32, so the payload size below cannot overflow 64 bits.
  check_size(path, data, 16, count * rows * cols, "images");
  ImageSet set;
  set.count = kept(count, limit);
  set.channels = 1;
  set.height = static_cast<int64_t>(rows);
  set.width = static_cast<int64_t>(cols);
  const auto* begin = reinterpret_cast<const uint8_t*>(data.data()) + 16;
  set.pixels.assign(begin, begin + set.count * rows * cols);
  return set;
}

std::vector<int64_t> read_idx_labels(const std::string& path, int64_t limit) {
  std::vector<uint64_t> dims;
  const std::string data = read_idx_file(path, kIdxLabelsMagic, 1, "labels", 1, &dims);
  const uint64_t count = dims[0];
  check_size(path, data, 8, count, "labels");
  const auto* begin = reinterpret_cast<const uint8_t*>(data.data()) + 8;
  return std::vector<int64_t>(begin, begin + kept(count, limit));
}

ImageSet read_idx_pair(const std::string& images_path, const std::string& labels_path,
                       int64_t limit, int classes) {
  ImageSet set = read_idx_images(images_path, 0);
  std::vector<int64_t> labels = read_idx_labels(labels_path, 0);
  if (static_cast<int64_t>(labels.size()) != set.count) {
    throw Error(labels_path + ": " + std::to_string(labels.size()) + " labels but " + images_path +
                " has " + std::to_string(set.count) + " images");
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= classes) {
      throw Error(labels_path + ": label " + std::to_string(labels[i]) + " at index " +
                  std::to_string(i) + " is outside [0, " + std::to_string(classes) + ")");
    }
  }
  const int64_t n = kept(static_cast<uint64_t>(set.count), limit);
  set.pixels.resize(static_cast<size_t>(n * set.height * set.width));
  labels.resize(static_cast<size_t>(n));
  set.count = n;
  set.labels = std::move(labels);
  set.classes = classes;
  return set;
}

}  // namespace datanas
