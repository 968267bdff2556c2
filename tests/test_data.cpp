#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <random>

#include "data/cifar.h"
#include "data/datasets.h"
#include "data/idx.h"
#include "data/loader.h"
#include "util/error.h"
#include "util/files.h"

namespace datanas {
namespace {
namespace fs = std::filesystem;

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

std::string idx_images(uint32_t n, uint32_t rows, uint32_t cols, const std::string& pixels) {
  return be32(kIdxImagesMagic) + be32(n) + be32(rows) + be32(cols) + pixels;
}

std::string idx_labels(const std::string& labels) {
  return be32(kIdxLabelsMagic) + be32(static_cast<uint32_t>(labels.size())) + labels;
}

void write_file(const fs::path& path, const std::string& data) {
  std::ofstream(path, std::ios::binary)
      .write(data.data(), static_cast<std::streamsize>(data.size()));
}

void write_gz(const fs::path& path, const std::string& data) {
  gzFile file = gzopen(path.c_str(), "wb");
  ASSERT_NE(file, nullptr);
  ASSERT_EQ(gzwrite(file, data.data(), static_cast<unsigned>(data.size())),
            static_cast<int>(data.size()));
  gzclose(file);
}

// `fn` must throw datanas::Error with a message that contains `part`.
void expect_error(const std::function<void()>& fn, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "no Error thrown, expected one mentioning " << part;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int counter = 0;
    dir_ = fs::temp_directory_path() /
           ("datanas_test_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// Pixels 3 images of 4x5; labels 0..9.
const std::string kPixels = random_bytes(3 * 4 * 5, 1);
const std::string kLabels = {2, 0, 9};

TEST_F(DataTest, IdxRawAndGzipRoundTrip) {
  for (bool gz : {false, true}) {
    const std::string images = path(gz ? "i.gz" : "i"), labels = path(gz ? "l.gz" : "l");
    (gz ? write_gz : write_file)(images, idx_images(3, 4, 5, kPixels));
    (gz ? write_gz : write_file)(labels, idx_labels(kLabels));
    const ImageSet set = read_idx_pair(images, labels);
    EXPECT_EQ(set.count, 3);
    EXPECT_EQ(set.channels, 1);
    EXPECT_EQ(set.height, 4);
    EXPECT_EQ(set.width, 5);
    EXPECT_EQ(set.classes, 10);
    EXPECT_EQ(std::string(set.pixels.begin(), set.pixels.end()), kPixels);
    EXPECT_EQ(set.labels, (std::vector<int64_t>{2, 0, 9}));
    const ImageSet two = read_idx_pair(images, labels, 2);
    EXPECT_EQ(two.count, 2);
    EXPECT_EQ(std::string(two.pixels.begin(), two.pixels.end()), kPixels.substr(0, 40));
    EXPECT_EQ(two.labels, (std::vector<int64_t>{2, 0}));
  }
}

TEST_F(DataTest, IdxErrorsNameTheFile) {
  const std::string images = path("images-idx3"), labels = path("labels-idx1");
  write_file(images, idx_images(3, 4, 5, kPixels));
  write_file(labels, idx_labels(kLabels));
  expect_error([&] { read_idx_images(path("missing-idx3")); }, "missing-idx3");
  expect_error([&] { read_idx_images(labels); }, "labels-idx1");  // wrong magic
  expect_error([&] { read_idx_labels(images); }, "images-idx3");
  const std::string truncated = path("truncated-idx3");
  write_file(truncated, idx_images(3, 4, 5, kPixels.substr(0, 59)));
  expect_error([&] { read_idx_images(truncated); }, "truncated-idx3");
  write_gz(truncated + ".gz", idx_images(3, 4, 5, kPixels.substr(0, 10)));
  expect_error([&] { read_idx_images(truncated + ".gz"); }, "truncated-idx3.gz");
  write_gz(path("cut.gz"), idx_images(3, 4, 5, kPixels));
  const std::string gz = read_text_file(path("cut.gz"));
  write_file(path("cut.gz"), gz.substr(0, gz.size() - 12));  // a gzip stream cut short
  expect_error([&] { read_idx_images(path("cut.gz")); }, "cut.gz");
  const std::string short_header = path("short-idx1");
  write_file(short_header, be32(kIdxLabelsMagic));
  expect_error([&] { read_idx_labels(short_header); }, "short-idx1");
  const std::string two = path("two-labels-idx1");
  write_file(two, idx_labels(kLabels.substr(0, 2)));
  expect_error([&] { read_idx_pair(images, two); }, "two-labels-idx1");
  const std::string big = path("big-labels-idx1");
  write_file(big, idx_labels(std::string{1, 10, 3}));
  expect_error([&] { read_idx_pair(images, big); }, "big-labels-idx1");
  EXPECT_NO_THROW(read_idx_pair(images, big, 0, 11));
}

TEST_F(DataTest, IdxDatasetPrefersExistingFileAndReportsLayout) {
  write_gz(path("t10k-images-idx3-ubyte.gz"), idx_images(3, 28, 28, random_bytes(3 * 784, 2)));
  write_file(path("t10k-labels-idx1-ubyte"), idx_labels(kLabels));
  const ImageSet set = load_dataset("mnist", dir_.string(), false, 2);
  EXPECT_EQ(set.count, 2);
  EXPECT_EQ(set.labels, (std::vector<int64_t>{2, 0}));
  expect_error([&] { load_dataset("mnist", dir_.string(), true); }, "train-images-idx3-ubyte");
  expect_error([&] { load_dataset("fashion-mnist", path("nowhere"), true); }, "nowhere");
  expect_error([&] { load_dataset("imagenet", dir_.string(), true); }, "cifar100");
}

TEST_F(DataTest, DatasetInfo) {
  EXPECT_EQ(dataset_names(),
            (std::vector<std::string>{"fashion-mnist", "mnist", "cifar10", "cifar100"}));
  const DatasetInfo& fashion = dataset_info("fashion-mnist");
  EXPECT_EQ(fashion.channels, 1);
  EXPECT_EQ(fashion.size, 28);
  EXPECT_FLOAT_EQ(fashion.mean[0], 0.2860f);
  EXPECT_FALSE(fashion.augment_crop_flip);
  EXPECT_EQ(dataset_info("cifar100").classes, 100);
  EXPECT_TRUE(dataset_info("cifar10").augment_crop_flip);
  EXPECT_EQ(dataset_info("cifar10").stddev.size(), 3u);
  expect_error([] { dataset_info("svhn"); }, "fashion-mnist");
}

std::string cifar_records(int label_bytes, const std::vector<uint8_t>& labels, uint32_t seed) {
  std::string data;
  for (uint8_t label : labels) {
    if (label_bytes == 2) data += static_cast<char>(label / 5);  // coarse
    data += static_cast<char>(label);
    data += random_bytes(kCifarImageBytes, seed++);
  }
  return data;
}

TEST_F(DataTest, Cifar10RoundTripAcrossBatches) {
  const fs::path sub = dir_ / "cifar-10-batches-bin";
  fs::create_directories(sub);
  for (int i = 1; i <= 5; ++i) {
    write_file(sub / ("data_batch_" + std::to_string(i) + ".bin"),
               cifar_records(1, {static_cast<uint8_t>(i), 9}, 10 * i));
  }
  write_file(sub / "test_batch.bin", cifar_records(1, {7}, 100));
  const ImageSet train = load_dataset("cifar10", dir_.string(), true);
  EXPECT_EQ(train.count, 10);
  EXPECT_EQ(train.channels, 3);
  EXPECT_EQ(train.height, 32);
  EXPECT_EQ(train.labels[4], 3);
  EXPECT_EQ(train.labels[5], 9);
  const std::string third = random_bytes(kCifarImageBytes, 30);  // first of data_batch_3
  EXPECT_TRUE(std::equal(third.begin(), third.end(), train.pixels.begin() + 4 * kCifarImageBytes,
                         [](char a, uint8_t b) { return static_cast<uint8_t>(a) == b; }));
  EXPECT_EQ(load_dataset("cifar10", dir_.string(), true, 3).count, 3);
  const ImageSet test = load_dataset("cifar10", sub.string(), false);
  EXPECT_EQ(test.labels, (std::vector<int64_t>{7}));
}

TEST_F(DataTest, Cifar100UsesFineLabels) {
  write_file(path("train.bin"), cifar_records(2, {99, 42, 0}, 5));
  write_file(path("test.bin"), cifar_records(2, {1}, 6));
  const ImageSet train = load_dataset("cifar100", dir_.string(), true);
  EXPECT_EQ(train.classes, 100);
  EXPECT_EQ(train.labels, (std::vector<int64_t>{99, 42, 0}));
  const std::string second = random_bytes(kCifarImageBytes, 6);
  EXPECT_EQ(std::string(train.pixels.begin() + kCifarImageBytes,
                        train.pixels.begin() + 2 * kCifarImageBytes),
            second);
}

TEST_F(DataTest, CifarErrorsNameTheFile) {
  expect_error([&] { load_dataset("cifar10", dir_.string(), false); }, "test_batch.bin");
  write_file(path("test_batch.bin"), cifar_records(1, {1, 2}, 1).substr(1));
  expect_error([&] { load_dataset("cifar10", dir_.string(), false); }, "test_batch.bin");
  write_file(path("test_batch.bin"), cifar_records(1, {1, 10}, 1));
  expect_error([&] { load_dataset("cifar10", dir_.string(), false); }, "test_batch.bin");
  write_file(path("test.bin"), cifar_records(1, {1, 2}, 1));  // CIFAR-10 records
  expect_error([&] { load_dataset("cifar100", dir_.string(), false); }, "test.bin");
  expect_error([&] { load_dataset("cifar100", dir_.string(), true); }, "train.bin");
}

ImageSet small_set(int64_t count, int64_t channels, int64_t size) {
  ImageSet set{count, channels, size, size, 10, {}, {}};
  const std::string bytes = random_bytes(static_cast<size_t>(count * channels * size * size), 7);
  set.pixels.assign(bytes.begin(), bytes.end());
  for (int64_t i = 0; i < count; ++i) set.labels.push_back(i % 10);
  return set;
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

TEST(LoaderTest, NormalisesAndBatches) {
  const ImageSet set = small_set(10, 3, 8);
  const DatasetInfo& info = dataset_info("cifar10");
  ImageLoader loader(set, iota(10), info, {4, false, false, 0, 1});
  EXPECT_EQ(loader.size(), 10);
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  const Batch first = loader.batch(0, 0);
  EXPECT_EQ(first.images.sizes(), (at::IntArrayRef{4, 3, 8, 8}));
  EXPECT_EQ(first.images.scalar_type(), at::kFloat);
  EXPECT_EQ(first.labels.scalar_type(), at::kLong);
  const int64_t pixel = 1 * 64 + 2 * 8 + 5;  // image 0, channel 1, y 2, x 5
  const float expected = (set.pixels[pixel] / 255.0f - info.mean[1]) / info.stddev[1];
  EXPECT_NEAR(first.images[0][1][2][5].item<float>(), expected, 1e-5);
  const Batch last = loader.batch(0, 2);
  EXPECT_EQ(last.images.size(0), 2);
  EXPECT_EQ(last.labels[1].item<int64_t>(), 9);
  expect_error([&] { loader.batch(0, 3); }, "batch index");
  expect_error([&] { ImageLoader(set, iota(10), info, {0, false, false, 0, 1}); }, "batch size");
  expect_error([&] { ImageLoader(set, {}, info, {}); }, "no images");
  expect_error([&] { ImageLoader(set, {0, 10}, info, {}); }, "index 10");
  expect_error([&] { ImageLoader(set, iota(10), dataset_info("mnist"), {}); }, "channels");
}

TEST(LoaderTest, ShuffleIsDeterministicPerEpoch) {
  const ImageSet set = small_set(50, 1, 4);
  const auto order = [&](uint64_t seed, int64_t epoch) {
    ImageLoader loader(set, iota(50), dataset_info("mnist"), {50, true, false, 0, seed});
    return loader.batch(epoch, 0).labels;
  };
  EXPECT_TRUE(order(3, 1).equal(order(3, 1)));
  EXPECT_FALSE(order(3, 1).equal(order(3, 2)));
  EXPECT_FALSE(order(3, 1).equal(order(4, 1)));
  // Every image once per epoch.
  const at::Tensor counts = torch::bincount(order(3, 1), {}, 10);
  EXPECT_TRUE(counts.equal(torch::full({10}, 5, torch::kLong)));
}

TEST(LoaderTest, SplitIndices) {
  const auto [train, valid] = split_indices(10, 0.75);
  EXPECT_EQ(train, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));  // round(7.5) = 8
  EXPECT_EQ(valid, (std::vector<int64_t>{8, 9}));
  EXPECT_EQ(split_indices(10, 1.0).second.size(), 0u);
  EXPECT_EQ(split_indices(7, 0.5).first.size(), 4u);
  expect_error([] { split_indices(10, 1.5); }, "portion");
}

// Image `image` with padding-4 crop offset (dy, dx) and optional flip, as the loader defines it.
at::Tensor transformed(const at::Tensor& image, int64_t dy, int64_t dx, bool flip) {
  const int64_t h = image.size(1), w = image.size(2);
  at::Tensor padded = torch::constant_pad_nd(image, {4, 4, 4, 4}, 0);
  at::Tensor crop = padded.narrow(1, 4 + dy, h).narrow(2, 4 + dx, w);
  return flip ? crop.flip({2}) : crop;
}

TEST(LoaderTest, AugmentationIsACropAndFlipAndDeterministic) {
  const ImageSet set = small_set(16, 3, 8);
  const DatasetInfo& info = dataset_info("cifar10");
  ImageLoader plain(set, iota(16), info, {16, false, false, 0, 5});
  ImageLoader augmented(set, iota(16), info, {16, false, true, 0, 5});
  const at::Tensor original = plain.batch(0, 0).images;
  const at::Tensor a = augmented.batch(2, 0).images;
  EXPECT_EQ(a.sizes(), original.sizes());
  EXPECT_TRUE(a.equal(augmented.batch(2, 0).images));
  EXPECT_FALSE(a.equal(augmented.batch(3, 0).images));
  EXPECT_FALSE(a.equal(original));
  for (int64_t i = 0; i < 16; ++i) {
    bool found = false;
    for (int64_t dy = -4; dy <= 4 && !found; ++dy) {
      for (int64_t dx = -4; dx <= 4 && !found; ++dx) {
        for (bool flip : {false, true})
          found = found || a[i].equal(transformed(original[i], dy, dx, flip));
      }
    }
    EXPECT_TRUE(found) << "image " << i << " is not a padded crop (+ flip) of the original";
  }
}

TEST(LoaderTest, CutoutZeroesASquare) {
  const ImageSet set = small_set(8, 3, 8);
  ImageLoader loader(set, iota(8), dataset_info("cifar10"), {8, false, false, 4, 9});
  const at::Tensor images = loader.batch(0, 0).images;
  EXPECT_TRUE(images.equal(loader.batch(0, 0).images));
  for (int64_t i = 0; i < 8; ++i) {
    const int64_t zeros = (images[i][0] == 0).sum().item<int64_t>();
    EXPECT_GE(zeros, 4);  // at least a 2x2 corner piece, at most the full 4x4 square
    EXPECT_LE(zeros, 16);
    EXPECT_TRUE((images[i][0] == 0).equal(images[i][2] == 0));
  }
}

TEST(RealDataTest, FashionMnistTestSet) {
  const std::string dir = dataset_info("fashion-mnist").default_dir;
  if (!fs::is_directory(dir)) GTEST_SKIP() << dir << " not installed";
  const ImageSet set = load_dataset("fashion-mnist", dir, false, 100);
  EXPECT_EQ(set.count, 100);
  EXPECT_EQ(set.pixels.size(), 100u * 28 * 28);
  ImageLoader loader(set, iota(100), dataset_info("fashion-mnist"), {100, false, false, 0, 0});
  const Batch batch = loader.batch(0, 0);
  EXPECT_EQ(batch.images.sizes(), (at::IntArrayRef{100, 1, 28, 28}));
  EXPECT_GE(batch.labels.min().item<int64_t>(), 0);
  EXPECT_LT(batch.labels.max().item<int64_t>(), 10);
}

}  // namespace
}  // namespace datanas
