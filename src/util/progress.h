// A progress line for long work: step/total, caller's metrics, it/s and ETA. On a terminal it
// redraws one line in place; elsewhere (logs, CI) it prints at most every `every` steps.
#pragma once
#include <chrono>
#include <string>

namespace datanas {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  void update(int64_t done, const std::string& metrics);
  void finish(const std::string& metrics);

 private:
  std::string line(int64_t done, const std::string& metrics) const;
  std::string label_;
  int64_t total_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

// Seconds as "1h02m", "3m05s" or "12s".
std::string format_duration(double seconds);

}  // namespace datanas
