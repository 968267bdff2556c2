// The fuzz targets' inputs in the regular suite: every seed of fuzz/corpus and every input a
// fuzzer once crashed on (fuzz/regressions) goes through the same harness as under libFuzzer
// and must be accepted or refused with a datanas::Error, never anything else. Plus the
// checkpoint integrity check on the damage a crash or a disk does to a file.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cli_support.h"
#include "data/idx.h"
#include "fuzz_inputs.h"
#include "scratch.h"
#include "space/genotype.h"
#include "util/error.h"
#include "util/zip_check.h"

namespace datanas {
namespace {
namespace fs = std::filesystem;
using testing::slurp;

using Input = bool (*)(const uint8_t*, size_t);

const std::map<std::string, Input>& targets() {
  static const std::map<std::string, Input> all = {{"genotype", fuzz::genotype_input},
                                                   {"idx", fuzz::idx_input},
                                                   {"cifar", fuzz::cifar_input},
                                                   {"checkpoint", fuzz::checkpoint_input},
                                                   {"corpus", fuzz::corpus_input}};
  return all;
}

// The verdict of each file of fuzz/<folder>/<target>/ (name -> accepted).
std::map<std::string, bool> replay(const std::string& folder, const std::string& target) {
  std::map<std::string, bool> verdicts;
  const fs::path dir = fs::path(DATANAS_SOURCE_DIR) / "fuzz" / folder / target;
  if (!fs::is_directory(dir)) return verdicts;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string data = slurp(entry.path());
    const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
    bool accepted = false;
    EXPECT_NO_THROW(accepted = targets().at(target)(bytes, data.size()))
        << folder << "/" << target << "/" << entry.path().filename().string();
    verdicts[entry.path().filename().string()] = accepted;
  }
  return verdicts;
}

TEST(FuzzInputs, SeedCorporaAreAcceptedExceptTheDeliberatelyBadOnes) {
  for (const auto& [target, input] : targets()) {
    const auto verdicts = replay("corpus", target);
    EXPECT_FALSE(verdicts.empty()) << target << " has no seeds";
    for (const auto& [name, accepted] : verdicts)
      EXPECT_EQ(accepted, name.rfind("bad_", 0) != 0) << target << "/" << name;
  }
}

// Inputs that once crashed, hung or tripped a sanitizer are now refused cleanly.
TEST(FuzzInputs, RegressionsAreRefusedWithAnError) {
  for (const auto& [target, input] : targets())
    for (const auto& [name, accepted] : replay("regressions", target))
      EXPECT_FALSE(accepted) << target << "/" << name;
}

// The committed checkpoint seeds are what the harness writes today: a change of the
// checkpoint format or of the harness's configuration shows up here.
TEST(FuzzInputs, CheckpointSeedsMatchTheCurrentFormat) {
  const fs::path dir = fs::temp_directory_path() / ("datanas_seeds_" + std::to_string(::getpid()));
  fuzz::write_checkpoint_seeds(dir.string());
  if (const char* out = std::getenv("DATANAS_WRITE_FUZZ_SEEDS"))  // refreshes the repo's seeds
    fuzz::write_checkpoint_seeds(out);
  for (const char* name : {"search.pt", "model.pt"}) {
    const std::string data = slurp(dir / name);
    EXPECT_TRUE(fuzz::checkpoint_input(reinterpret_cast<const uint8_t*>(data.data()), data.size()))
        << name;
  }
  fs::remove_all(dir);
}

// Found by fuzz_genotype: a number too large for a double made nlohmann::json throw
// out_of_range, which escaped as an uncaught exception (std::terminate under the fuzzer).
TEST(FuzzFindings, NumberOverflowInAGenotypeIsAnError) {
  try {
    genotype_from_json("{\"format\": 33331e9333333}", "g.json");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("g.json: invalid JSON (number overflow"),
              std::string::npos)
        << e.what();
  }
}

// A small .gz that inflates to far more than its header announces is refused after reading
// one byte past the announced size, not after inflating all of it into memory.
TEST(BadInputs, GzipBombIdxIsRefusedAtItsAnnouncedSize) {
  const fs::path path = fs::temp_directory_path() / ("datanas_bomb_" + std::to_string(::getpid()));
  std::string raw = testing::be32(0x803) + testing::be32(1) + testing::be32(28) +
                    testing::be32(28) + std::string(64 << 20, '\0');
  {
    std::ofstream out(path, std::ios::binary);
    out << fuzz::gzip(raw);
  }
  EXPECT_LT(fs::file_size(path), 1u << 20);
  try {
    read_idx_images(path.string());
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is longer than the 800 bytes its header announces"),
              std::string::npos)
        << e.what();
  }
  fs::remove(path);
}

class ZipCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::serialize::OutputArchive archive;
    archive.write("weights", torch::arange(1000, torch::kFloat));
    archive.write("epochs_done", torch::tensor(int64_t{3}));
    path_ = (fs::temp_directory_path() / ("datanas_zip_" + std::to_string(::getpid()) + ".pt"))
                .string();
    archive.save_to(path_);
    data_ = slurp(path_);
    fs::remove(path_);
  }
  std::string error_of(const std::string& data) {
    try {
      check_zip_archive(data, "x.pt");
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  std::string path_, data_;
};

TEST_F(ZipCheck, AcceptsWhatLibTorchWrites) { EXPECT_EQ(error_of(data_), ""); }

TEST_F(ZipCheck, RefusesEveryTruncation) {
  for (size_t size = 0; size < data_.size(); size += 1 + size / 7) {
    const std::string message = error_of(data_.substr(0, size));
    EXPECT_EQ(message.rfind("x.pt: truncated or corrupt archive (", 0), 0u) << size << message;
  }
}

// A flipped byte inside the tensor data passes the zip structure but not the CRC-32.
TEST_F(ZipCheck, RefusesAFlippedPayloadByte) {
  const size_t at = data_.find(std::string("\x00\x00\x80\x3f", 4));  // the float 1.0
  ASSERT_NE(at, std::string::npos);
  std::string flipped = data_;
  flipped[at + 3] ^= 0x40;
  EXPECT_NE(error_of(flipped).find("fails its CRC-32 check"), std::string::npos);
}

TEST_F(ZipCheck, RefusesGarbageAndEmptyFiles) {
  std::mt19937 rng(9);
  std::string garbage;
  for (int i = 0; i < 5000; ++i) garbage.push_back(static_cast<char>(rng()));
  EXPECT_NE(error_of(garbage).find("no end-of-central-directory record"), std::string::npos);
  EXPECT_NE(error_of("").find("too short"), std::string::npos);
}

// A stored (uncompressed) zip of the given records, with right CRCs and offsets.
std::string stored_zip(const std::vector<std::pair<std::string, std::string>>& records) {
  auto u16 = [](std::string& s, uint64_t v) {
    s.push_back(static_cast<char>(v & 0xff));
    s.push_back(static_cast<char>((v >> 8) & 0xff));
  };
  auto u32 = [&](std::string& s, uint64_t v) {
    u16(s, v & 0xffff);
    u16(s, v >> 16);
  };
  std::string local, central;
  for (const auto& [name, content] : records) {
    const uint64_t crc = crc32(0L, reinterpret_cast<const Bytef*>(content.data()),
                               static_cast<uInt>(content.size()));
    const uint64_t offset = local.size(), size = content.size();
    u32(local, 0x04034b50);
    for (uint64_t v : {20, 0, 0}) u16(local, v);  // version needed, flags, method stored
    for (uint64_t v : {uint64_t{0}, crc, size, size}) u32(local, v);  // time and date, crc, sizes
    u16(local, name.size());
    u16(local, 0);
    local += name + content;
    u32(central, 0x02014b50);
    for (uint64_t v : {20, 20, 0, 0}) u16(central, v);
    for (uint64_t v : {uint64_t{0}, crc, size, size}) u32(central, v);
    for (uint64_t v : {name.size(), size_t{0}, size_t{0}, size_t{0}, size_t{0}}) u16(central, v);
    u32(central, 0);
    u32(central, offset);
    central += name;
  }
  std::string end;
  u32(end, 0x06054b50);
  for (uint64_t v : {size_t{0}, size_t{0}, records.size(), records.size()}) u16(end, v);
  u32(end, central.size());
  u32(end, local.size());
  u16(end, 0);
  return local + central + end;
}

// LibTorch's reader leaks its zip state when its constructor throws (found by fuzz_checkpoint:
// fuzz/regressions/checkpoint/leak_no_version_record), so the check refuses what it would
// throw on there: records outside one folder, no version record, a version it does not read.
TEST_F(ZipCheck, RefusesALayoutLibTorchsReaderWouldThrowOn) {
  EXPECT_EQ(error_of(stored_zip({{"archive/data.pkl", "x"}, {"archive/version", "3\n"}})), "");
  // miniz finds names whatever their case; stoull skips leading blanks and ignores a tail.
  EXPECT_EQ(error_of(stored_zip({{"a/data.pkl", "x"}, {"A/VERSION", " +10 tail"}})), "");
  EXPECT_NE(error_of(stored_zip({{"data.pkl", "x"}, {"version", "3"}})).find("not in a folder"),
            std::string::npos);
  EXPECT_NE(error_of(stored_zip({{"archive/data.pkl", "x"}})).find("no 'archive/version' record"),
            std::string::npos);
  for (const std::string version : {"0", "11", "-3", "three", "", "99999999999999999999999"}) {
    EXPECT_NE(error_of(stored_zip({{"archive/data.pkl", "x"}, {"archive/version", version}}))
                  .find("holds no format version"),
              std::string::npos)
        << "version '" << version << "'";
  }
}

}  // namespace
}  // namespace datanas
