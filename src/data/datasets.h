// Named image data sets and their on-disk layouts.
//   fashion-mnist, mnist: DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
//   cifar10:  DIR/data_batch_{1..5}.bin, DIR/test_batch.bin   (CIFAR binary version)
//   cifar100: DIR/train.bin, DIR/test.bin                      (fine labels)
#pragma once
#include <string>
#include <vector>

#include "data/image_set.h"

namespace datanas {

struct DatasetInfo {
  std::string name;
  int channels, size, classes;
  std::vector<float> mean, stddev;  // per channel, for normalisation
  bool augment_crop_flip;           // random crop (pad 4) + horizontal flip for training
  std::string default_dir;          // where the data set lives when --data is not given ("" none)
};

const DatasetInfo& dataset_info(const std::string& name);  // throws Error for an unknown name
std::vector<std::string> dataset_names();                  // the names dataset_info knows

// Reads the training (train=true) or test split of data set `name` from `dir`.
// `limit` > 0 keeps only the first `limit` images.
ImageSet load_dataset(const std::string& name, const std::string& dir, bool train,
                      int64_t limit = 0);

}  // namespace datanas
