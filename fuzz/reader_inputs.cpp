#include <stdexcept>

#include "data/cifar.h"
#include "data/idx.h"
#include "fuzz_inputs.h"
#include "scratch.h"
#include "space/genotype.h"

namespace datanas::fuzz {

bool genotype_input(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  return accepted([&] {
    const Genotype genotype = genotype_from_json(text, "fuzz");
    // What was accepted must write back to JSON that reads as the same genotype.
    if (!(genotype_from_json(genotype_to_json(genotype), "round trip") == genotype))
      throw std::logic_error("genotype does not round-trip");
  });
}

bool idx_input(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  const bool labels = data[0] & 1, compress = data[0] & 2;
  std::string content(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (compress) content = gzip(content);
  const ScratchFile file(compress ? "idx.gz" : "idx", content);
  return accepted([&] {
    if (labels) {
      read_idx_labels(file.path(), 3);
      read_idx_labels(file.path());
    } else {
      const ImageSet set = read_idx_images(file.path(), 3);
      if (set.pixels.size() != static_cast<size_t>(set.count * set.height * set.width))
        throw std::logic_error("pixel count does not match the header");
      read_idx_images(file.path());
    }
  });
}

bool cifar_input(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  const bool hundred = data[0] & 1;
  const ScratchFile file("cifar.bin",
                         std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  return accepted([&] {
    const ImageSet set = read_cifar_records({file.path()}, hundred ? 2 : 1, hundred ? 100 : 10);
    if (set.labels.size() != static_cast<size_t>(set.count) ||
        set.pixels.size() != static_cast<size_t>(set.count * kCifarImageBytes))
      throw std::logic_error("record count does not match the data");
  });
}

}  // namespace datanas::fuzz
