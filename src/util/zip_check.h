// Integrity check of the zip archives LibTorch writes (torch::save, OutputArchive::save_to):
// tensors are stored raw, the code/ records deflated, each with its CRC-32. Checking the central
// directory, every local header and every CRC before LibTorch parses the file turns a truncated,
// bit-flipped or foreign file into one clear Error instead of undefined behaviour inside the
// loader. The layout LibTorch's reader checks first (records in one folder, a supported
// `version`) is checked here too: its constructor leaks when it throws.
#pragma once
#include <string>

namespace datanas {

// Throws Error("<what>: ...") naming the first problem; `data` is the whole file.
void check_zip_archive(const std::string& data, const std::string& what);

// Reads `path` and checks it; throws Error naming the path.
void check_zip_file(const std::string& path);

}  // namespace datanas
