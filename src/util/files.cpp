#include "util/files.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace datanas {
namespace fs = std::filesystem;

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open file (" + std::strerror(errno) + ")");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

static std::string temp_path_for(const std::string& path) {
  return path + ".tmp." + std::to_string(::getpid());
}

void write_file_atomic_with(const std::string& path,
                            const std::function<void(const std::string&)>& writer) {
  const std::string temp = temp_path_for(path);
  try {
    writer(temp);
  } catch (...) {
    std::remove(temp.c_str());
    throw;
  }
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    std::remove(temp.c_str());
    throw Error(path + ": cannot write file (" + ec.message() + ")");
  }
}

void write_file_atomic(const std::string& path, const std::string& content) {
  write_file_atomic_with(path, [&](const std::string& temp) {
    std::FILE* file = std::fopen(temp.c_str(), "wb");
    if (!file) throw Error(path + ": cannot write file (" + std::strerror(errno) + ")");
    const bool ok = std::fwrite(content.data(), 1, content.size(), file) == content.size() &&
                    std::fflush(file) == 0 && ::fsync(::fileno(file)) == 0;
    std::fclose(file);
    if (!ok) throw Error(path + ": short write");
  });
}

void make_directories(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw Error(path + ": cannot create directory (" + ec.message() + ")");
}

bool file_exists(const std::string& path) { return fs::exists(path); }

}  // namespace datanas
