#include "util/files.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

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

// Test hook: with DATANAS_TEST_PAUSE_IN_CHECKPOINT=SECONDS every .pt file waits that long
// between writing its temp file and renaming it, so a test can kill a run mid-write.
static void pause_in_checkpoint_write(const std::string& path) {
  static const char* seconds = std::getenv("DATANAS_TEST_PAUSE_IN_CHECKPOINT");
  if (!seconds || path.size() < 3 || path.compare(path.size() - 3, 3, ".pt") != 0) return;
  std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(seconds)));
}

// Flushes a file (or a folder's entries) to disk; false when it cannot.
static bool sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

void write_file_atomic_with(const std::string& path,
                            const std::function<void(const std::string&)>& writer) {
  const std::string temp = temp_path_for(path);
  try {
    writer(temp);
    // The data must be on disk before the rename makes it the file: otherwise a crash of the
    // machine (not only of the process) could leave a complete name over incomplete data.
    if (!sync_path(temp, O_RDONLY)) throw Error(path + ": cannot flush file to disk");
  } catch (...) {
    std::remove(temp.c_str());
    throw;
  }
  pause_in_checkpoint_write(path);
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) {
    std::remove(temp.c_str());
    throw Error(path + ": cannot write file (" + ec.message() + ")");
  }
  const std::string dir = fs::path(path).parent_path().string();
  sync_path(dir.empty() ? "." : dir, O_RDONLY | O_DIRECTORY);
}

int remove_stale_temp_files(const std::string& dir) {
  int removed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    const size_t mark = name.rfind(".tmp.");
    if (mark == std::string::npos || !entry.is_regular_file()) continue;
    const std::string pid_text = name.substr(mark + 5);
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::strtol(pid_text.c_str(), nullptr, 10);
    // Only files of writers that are gone: a live process may still be renaming its own.
    if (pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH)) continue;
    if (fs::remove(entry.path(), ec)) ++removed;
  }
  return removed;
}

void write_file_atomic(const std::string& path, const std::string& content) {
  write_file_atomic_with(path, [&](const std::string& temp) {
    std::FILE* file = std::fopen(temp.c_str(), "wb");
    if (!file) throw Error(path + ": cannot write file (" + std::strerror(errno) + ")");
    const bool ok = std::fwrite(content.data(), 1, content.size(), file) == content.size() &&
                    std::fflush(file) == 0 && ::fsync(::fileno(file)) == 0;
    if (std::fclose(file) != 0 || !ok) throw Error(path + ": short write");
  });
}

void make_directories(const std::string& path) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw Error(path + ": cannot create directory (" + ec.message() + ")");
}

bool file_exists(const std::string& path) { return fs::exists(path); }

}  // namespace datanas
