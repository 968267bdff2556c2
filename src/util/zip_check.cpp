#include "util/zip_check.h"

#include <caffe2/serialize/versions.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <vector>

#include "util/error.h"
#include "util/files.h"

namespace datanas {
namespace {

constexpr uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50;
constexpr uint32_t kEnd = 0x06054b50, kEnd64 = 0x06064b50, kEnd64Locator = 0x07064b50;
constexpr size_t kEndSize = 22, kCentralSize = 46, kLocalSize = 30;
constexpr uint64_t kMaxInflated = 64u << 20;

struct Reader {
  const std::string& data;
  const std::string& what;
  uint64_t u(uint64_t offset, int bytes) const {
    if (offset > data.size() || data.size() - offset < static_cast<uint64_t>(bytes))
      throw Error(what + ": truncated or corrupt archive (a zip record at byte " +
                  std::to_string(offset) + " runs past the end of the " +
                  std::to_string(data.size()) + "-byte file)");
    uint64_t value = 0;
    for (int i = bytes - 1; i >= 0; --i)
      value = value << 8 | static_cast<unsigned char>(data[offset + i]);
    return value;
  }
  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(what + ": truncated or corrupt archive (" + problem + ")");
  }
};

// The end-of-central-directory record: searched backwards over the comment's largest size.
uint64_t find_end(const Reader& r) {
  const std::string& d = r.data;
  if (d.size() < kEndSize) r.fail("too short for a zip archive");
  const uint64_t lowest = d.size() > kEndSize + 0xffff ? d.size() - kEndSize - 0xffff : 0;
  for (uint64_t at = d.size() - kEndSize + 1; at-- > lowest;) {
    if (r.u(at, 4) == kEnd && at + kEndSize + r.u(at + 20, 2) == d.size()) return at;
  }
  r.fail("no end-of-central-directory record");
}

struct Directory {
  uint64_t entries, size, offset;
};

Directory read_directory(const Reader& r, uint64_t end) {
  Directory dir{r.u(end + 10, 2), r.u(end + 12, 4), r.u(end + 16, 4)};
  if (dir.entries == 0xffff || dir.size == 0xffffffff || dir.offset == 0xffffffff) {
    if (end < 20 || r.u(end - 20, 4) != kEnd64Locator) r.fail("zip64 locator missing");
    const uint64_t end64 = r.u(end - 20 + 8, 8);
    if (r.u(end64, 4) != kEnd64) r.fail("zip64 end record missing");
    dir = {r.u(end64 + 32, 8), r.u(end64 + 40, 8), r.u(end64 + 48, 8)};
  }
  if (dir.offset > r.data.size() || r.data.size() - dir.offset < dir.size)
    r.fail("central directory outside the file");
  if (dir.entries == 0) r.fail("no entries");
  return dir;
}

// Sizes and offset of a central entry, taking zip64 extra fields into account.
void zip64_values(const Reader& r, uint64_t extra, uint64_t extra_len, uint64_t* values[3]) {
  for (uint64_t at = extra; at + 4 <= extra + extra_len;) {
    const uint64_t id = r.u(at, 2), len = r.u(at + 2, 2);
    if (at + 4 + len > extra + extra_len) r.fail("extra field overruns its entry");
    if (id == 1) {
      uint64_t field = at + 4;
      for (int i = 0; i < 3; ++i) {
        if (*values[i] != 0xffffffff) continue;
        if (field + 8 > at + 4 + len) r.fail("zip64 field too short");
        *values[i] = r.u(field, 8);
        field += 8;
      }
      return;
    }
    at += 4 + len;
  }
}

// A checked entry: its name, and its content when it is small enough to be a version record.
struct Entry {
  std::string name, small_content;
};
constexpr uint64_t kSmallContent = 64;

Entry check_entry(const Reader& r, uint64_t at, uint64_t* next) {
  if (r.u(at, 4) != kCentralHeader) r.fail("bad central directory entry");
  const uint64_t method = r.u(at + 10, 2), crc = r.u(at + 16, 4);
  uint64_t compressed = r.u(at + 20, 4), size = r.u(at + 24, 4), local = r.u(at + 42, 4);
  const uint64_t name_len = r.u(at + 28, 2), extra_len = r.u(at + 30, 2),
                 comment_len = r.u(at + 32, 2);
  const std::string name = r.data.substr(at + kCentralSize, name_len);
  uint64_t* values[3] = {&size, &compressed, &local};
  zip64_values(r, at + kCentralSize + name_len, extra_len, values);
  *next = at + kCentralSize + name_len + extra_len + comment_len;
  if (method != 0 && method != 8) r.fail("entry '" + name + "' uses an unknown compression");
  if (method == 0 && compressed != size) r.fail("entry '" + name + "' has inconsistent sizes");
  if (r.u(local, 4) != kLocalHeader) r.fail("entry '" + name + "' has no local header");
  const uint64_t start = local + kLocalSize + r.u(local + 26, 2) + r.u(local + 28, 2);
  if (start > r.data.size() || r.data.size() - start < compressed)
    r.fail("entry '" + name + "' runs past the end of the file");
  const auto* bytes = reinterpret_cast<const Bytef*>(r.data.data() + start);
  if (method == 8) {
    // Deflated entries (LibTorch's code/ records) are small: inflate them to check the CRC.
    if (size > kMaxInflated) r.fail("compressed entry '" + name + "' is too large");
    std::string out(size, '\0');
    z_stream z{};
    inflateInit2(&z, -MAX_WBITS);
    z.next_in = const_cast<Bytef*>(bytes);
    z.avail_in = static_cast<uInt>(compressed);
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int status = inflate(&z, Z_FINISH);
    const uint64_t produced = z.total_out;
    inflateEnd(&z);
    if (status != Z_STREAM_END || produced != size)
      r.fail("compressed entry '" + name + "' does not inflate to its size");
    if (crc32(0L, reinterpret_cast<const Bytef*>(out.data()), static_cast<uInt>(size)) != crc)
      r.fail("entry '" + name + "' fails its CRC-32 check");
    return {name, size <= kSmallContent ? out : std::string()};
  }
  uLong actual = crc32(0L, Z_NULL, 0);
  for (uint64_t done = 0; done < size;) {
    const uInt chunk = static_cast<uInt>(std::min<uint64_t>(size - done, 1u << 30));
    actual = crc32(actual, bytes + done, chunk);
    done += chunk;
  }
  if (actual != crc) r.fail("entry '" + name + "' fails its CRC-32 check");
  return {name, size <= kSmallContent ? r.data.substr(start, size) : std::string()};
}

bool same_name(const std::string& a, const std::string& b) {  // as miniz looks names up
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// The version as LibTorch parses it (std::stoull: leading blanks, digits, anything after); -1
// when it would not parse or is out of range.
int64_t parsed_version(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  if (i < text.size() && text[i] == '+') ++i;
  uint64_t value = 0;
  size_t digits = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i, ++digits) {
    value = value * 10 + static_cast<uint64_t>(text[i] - '0');
    if (value > caffe2::serialize::kMaxSupportedFileFormatVersion) return -1;
  }
  if (digits == 0 || value < caffe2::serialize::kMinSupportedFileFormatVersion) return -1;
  return static_cast<int64_t>(value);
}

// What LibTorch's reader demands of the layout in its constructor, which leaks its zip state
// when it throws there: every record in the folder that the first entry names, and a `version`
// record in it holding a format version LibTorch reads.
void check_torch_layout(const Reader& r, const std::vector<Entry>& entries) {
  const std::string& first = entries.front().name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos) r.fail("its first record '" + first + "' is not in a folder");
  const std::string version_name = first.substr(0, slash + 1) + "version";
  const auto version = std::find_if(entries.begin(), entries.end(), [&](const Entry& e) {
    return same_name(e.name, version_name);
  });
  if (version == entries.end()) r.fail("no '" + version_name + "' record");
  if (parsed_version(version->small_content) < 0)
    r.fail("'" + version_name + "' holds no format version this LibTorch reads");
}

}  // namespace

void check_zip_archive(const std::string& data, const std::string& what) {
  const Reader r{data, what};
  const Directory dir = read_directory(r, find_end(r));
  uint64_t at = dir.offset;
  std::vector<Entry> entries;
  for (uint64_t i = 0; i < dir.entries; ++i) {
    if (at >= dir.offset + dir.size) r.fail("central directory holds fewer entries than announced");
    entries.push_back(check_entry(r, at, &at));
  }
  check_torch_layout(r, entries);
}

void check_zip_file(const std::string& path) { check_zip_archive(read_text_file(path), path); }

}  // namespace datanas
