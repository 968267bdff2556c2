// File helpers: whole-file reads with clear errors and atomic writes (temp file + rename), so
// an interrupted run never leaves a half-written output behind.
#pragma once
#include <functional>
#include <string>

namespace datanas {

// Reads a whole file; throws Error("<path>: cannot open ...") when it cannot.
std::string read_text_file(const std::string& path);

// Writes `content` to `path` atomically: a temp file beside it, flushed to disk, then renamed
// (and the folder flushed), so `path` is always either the old or the whole new content.
void write_file_atomic(const std::string& path, const std::string& content);

// Atomic write through a callback that writes the temp file itself (e.g. torch::save).
void write_file_atomic_with(const std::string& path,
                            const std::function<void(const std::string& temp_path)>& writer);

// Removes the temp files (NAME.tmp.PID) that writers killed mid-write left in `dir`, only those
// whose process is gone. Returns how many it removed.
int remove_stale_temp_files(const std::string& dir);

// Creates a directory and its parents; throws Error naming the path on failure.
void make_directories(const std::string& path);

bool file_exists(const std::string& path);

}  // namespace datanas
