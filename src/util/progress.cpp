#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace datanas {

std::string format_duration(double seconds) {
  const long s = static_cast<long>(seconds + 0.5);
  char text[32];
  if (s >= 3600) std::snprintf(text, sizeof text, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
  else if (s >= 60) std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(text, sizeof text, "%lds", s);
  return text;
}

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(total),
      terminal_(::isatty(::fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_) {}

std::string Progress::line(int64_t done, const std::string& metrics) const {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = elapsed > 0 ? done / elapsed : 0.0;
  const double eta = rate > 0 ? (total_ - done) / rate : 0.0;
  char head[160];
  std::snprintf(head, sizeof head, "%s %lld/%lld", label_.c_str(), static_cast<long long>(done),
                static_cast<long long>(total_));
  char tail[96];
  std::snprintf(tail, sizeof tail, " | %.2f it/s | ETA %s", rate, format_duration(eta).c_str());
  return std::string(head) + (metrics.empty() ? "" : " | " + metrics) + tail;
}

void Progress::update(int64_t done, const std::string& metrics) {
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if (terminal_) {
    if (since < 0.2 && done < total_) return;
    std::fprintf(stderr, "\r\033[K%s", line(done, metrics).c_str());
  } else {
    if (since < 30.0) return;
    std::fprintf(stderr, "%s\n", line(done, metrics).c_str());
  }
  std::fflush(stderr);
  last_print_ = now;
}

void Progress::finish(const std::string& metrics) {
  if (terminal_) std::fprintf(stderr, "\r\033[K");
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "%s done in %s | %s\n", label_.c_str(), format_duration(elapsed).c_str(),
               metrics.c_str());
  std::fflush(stderr);
}

}  // namespace datanas
