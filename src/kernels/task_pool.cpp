#include "kernels/task_pool.h"

#include <ATen/Parallel.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "util/error.h"

namespace datanas {
namespace kernels {
namespace {

// Set on the pool's threads while they run a piece, and on a caller while its region runs:
// a region started from inside one runs inline.
thread_local bool t_in_region = false;

// A forked child has none of the pool's threads: its regions run inline.
std::atomic<bool> g_forked{false};
void mark_forked() { g_forked = true; }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// Pieces a region is cut into per thread: a worker that wakes late finds the rest of the work
// still there instead of the caller waiting for its half.
constexpr int64_t kPiecesPerThread = 4;

class TaskPool {
 public:
  static TaskPool& instance() {
    // Never destroyed: its threads may still be asleep when the process exits.
    static TaskPool* pool = new TaskPool();
    return *pool;
  }

  // Runs the region, or returns false when another caller's region holds the pool.
  bool run(int64_t begin, int64_t end, int64_t grain, int threads,
           const std::function<void(int64_t, int64_t)>& fn) {
    std::unique_lock<std::mutex> region(region_mutex_, std::try_to_lock);
    if (!region.owns_lock()) return false;
    resize(threads - 1);
    const int64_t range = end - begin;
    const int64_t wanted =
        std::min<int64_t>((range + grain - 1) / grain, kPiecesPerThread * threads);
    const int64_t piece = std::max(grain, (range + wanted - 1) / wanted);
    job_ = {&fn, begin, end, piece, (range + piece - 1) / piece};
    error_ = nullptr;
    next_piece_.store(0, std::memory_order_relaxed);
    acknowledged_.store(0, std::memory_order_relaxed);
    epoch_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      wake_.notify_all();
    }
    t_in_region = true;
    work();
    t_in_region = false;
    // Every worker takes part in every region (it may have found no piece left), so none can
    // still be reading job_ when the next region writes it.
    const int expected = static_cast<int>(workers_.size());
    for (int spins = 0; acknowledged_.load(std::memory_order_acquire) < expected; ++spins) {
      if (spins < 4096) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
    if (error_) std::rethrow_exception(error_);
    return true;
  }

 private:
  struct Job {
    const std::function<void(int64_t, int64_t)>* fn = nullptr;
    int64_t begin = 0, end = 0, piece = 1, pieces = 0;
  };

  TaskPool() : spin_(std::chrono::microseconds(pool_spin_microseconds())) {
    pthread_atfork(nullptr, nullptr, &mark_forked);
  }

  // Pieces until none is left; the first exception is kept for the caller.
  void work() {
    for (int64_t p; (p = next_piece_.fetch_add(1, std::memory_order_relaxed)) < job_.pieces;) {
      const int64_t b = job_.begin + p * job_.piece;
      const int64_t e = std::min(job_.end, b + job_.piece);
      if (b >= e) continue;
      try {
        (*job_.fn)(b, e);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void worker_loop(uint64_t seen) {
    t_in_region = true;
    for (;;) {
      const auto spin_until = std::chrono::steady_clock::now() + spin_;
      while (epoch_.load(std::memory_order_acquire) == seen && !stop_.load() &&
             std::chrono::steady_clock::now() < spin_until)
        for (int i = 0; i < 64; ++i) cpu_relax();
      if (epoch_.load(std::memory_order_acquire) == seen && !stop_.load()) {
        std::unique_lock<std::mutex> lock(sleep_mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        wake_.wait(lock, [&] { return epoch_.load(std::memory_order_seq_cst) != seen || stop_; });
        sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      }
      if (stop_.load()) return;
      seen = epoch_.load(std::memory_order_acquire);
      work();
      acknowledged_.fetch_add(1, std::memory_order_release);
    }
  }

  // Called with region_mutex_ held, between regions.
  void resize(int count) {
    count = std::max(count, 0);
    if (static_cast<int>(workers_.size()) == count) return;
    {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
      stop_ = true;
      wake_.notify_all();
    }
    for (std::thread& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    const uint64_t now = epoch_.load();
    for (int i = 0; i < count; ++i) workers_.emplace_back([this, now] { worker_loop(now); });
  }

  const std::chrono::microseconds spin_;
  std::mutex region_mutex_, sleep_mutex_, error_mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> epoch_{0};
  std::atomic<int64_t> next_piece_{0};
  std::atomic<int> acknowledged_{0}, sleepers_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
  Job job_;
  std::exception_ptr error_;
};

}  // namespace

int64_t pool_spin_microseconds() {
  const char* text = std::getenv("DATANAS_SPIN_US");
  if (!text || !*text) return 100;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (*end != '\0' || errno != 0 || value < 0 || value > 1000000)
    throw Error(std::string("DATANAS_SPIN_US: expected microseconds from 0 to 1000000, got '") +
                text + "'");
  return value;
}

void parallel_pieces(int64_t begin, int64_t end, int64_t grain,
                     const std::function<void(int64_t, int64_t)>& fn) {
  if (begin >= end) return;
  grain = std::max<int64_t>(grain, 1);
  const int threads = at::get_num_threads();
  if (threads <= 1 || end - begin <= grain || t_in_region || at::in_parallel_region() || g_forked ||
      !TaskPool::instance().run(begin, end, grain, threads, fn))
    fn(begin, end);
}

}  // namespace kernels
}  // namespace datanas
