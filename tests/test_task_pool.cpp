// The native kernels' thread pool (kernels/task_pool.h): every index exactly once in pieces of
// at least the grain, real parallelism, exceptions carried to the caller, nested and concurrent
// regions, any thread count, a forked child, and the spin setting's checks.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "kernels/task_pool.h"
#include "util/error.h"

namespace datanas {
namespace {
using kernels::parallel_pieces;

// at::set_num_threads for one test, restored after.
class ThreadCount {
 public:
  explicit ThreadCount(int threads) : before_(at::get_num_threads()) {
    at::set_num_threads(threads);
  }
  ~ThreadCount() { at::set_num_threads(before_); }

 private:
  int before_;
};

// How many times fn's pieces covered each index of [begin, end), and the pieces' lengths.
struct Coverage {
  std::vector<std::atomic<int>> hits;
  std::mutex mutex;
  std::vector<std::pair<int64_t, int64_t>> pieces;
  explicit Coverage(size_t n) : hits(n) {}
};

void cover(int64_t begin, int64_t end, int64_t grain, Coverage& c) {
  parallel_pieces(begin, end, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) c.hits[static_cast<size_t>(i)]++;
    std::lock_guard<std::mutex> lock(c.mutex);
    c.pieces.emplace_back(b, e);
  });
}

TEST(TaskPool, CoversEveryIndexOnceInPiecesOfTheGrain) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadCount count(threads);
    for (int64_t begin : {0, 7}) {
      for (int64_t length : {0, 1, 2, 9, 64, 1000}) {
        for (int64_t grain : {1, 4, 100}) {
          const int64_t end = begin + length;
          Coverage c(static_cast<size_t>(end));
          cover(begin, end, grain, c);
          for (int64_t i = 0; i < end; ++i) {
            ASSERT_EQ(c.hits[static_cast<size_t>(i)].load(), i < begin ? 0 : 1)
                << "index " << i << " of [" << begin << ", " << end << ") grain " << grain << ", "
                << threads << " threads";
          }
          std::sort(c.pieces.begin(), c.pieces.end());
          for (size_t p = 0; p + 1 < c.pieces.size(); ++p) {
            EXPECT_GE(c.pieces[p].second - c.pieces[p].first, grain) << "a piece below the grain";
          }
          if (length > 0 && length <= grain) {
            EXPECT_EQ(c.pieces.size(), 1u);
          }
          EXPECT_LE(static_cast<int64_t>(c.pieces.size()), std::max<int64_t>(1, 4 * threads));
        }
      }
    }
  }
}

// With two threads the pieces run on two threads at once: the first piece waits (up to ten
// seconds) for a piece on another thread to start.
TEST(TaskPool, RunsPiecesOnTwoThreadsAtOnce) {
  ThreadCount count(2);
  for (int round = 0; round < 3; ++round) {
    std::mutex mutex;
    std::set<std::thread::id> ids;
    std::atomic<bool> second_started{false};
    const std::thread::id caller = std::this_thread::get_id();
    parallel_pieces(0, 8, 1, [&](int64_t b, int64_t) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        ids.insert(std::this_thread::get_id());
        if (ids.size() > 1) second_started = true;
      }
      if (b != 0) return;
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!second_started && std::chrono::steady_clock::now() < give_up)
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    });
    EXPECT_EQ(ids.size(), 2u) << "round " << round;
    EXPECT_EQ(ids.count(caller), 1u) << "the caller takes pieces too";
  }
}

TEST(TaskPool, CarriesTheFirstExceptionAndStaysUsable) {
  ThreadCount count(2);
  std::atomic<int> ran{0};
  EXPECT_THROW(parallel_pieces(0, 100, 1,
                               [&](int64_t b, int64_t e) {
                                 ran += static_cast<int>(e - b);
                                 if (b <= 50 && 50 < e) throw std::runtime_error("piece 50");
                               }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 100) << "the other pieces still ran";
  Coverage c(64);
  cover(0, 64, 1, c);
  for (auto& h : c.hits) EXPECT_EQ(h.load(), 1);
}

TEST(TaskPool, NestedRegionsRunInsideTheirPiece) {
  ThreadCount count(2);
  Coverage c(16 * 16);
  parallel_pieces(0, 16, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const std::thread::id outer = std::this_thread::get_id();
      parallel_pieces(0, 16, 1, [&](int64_t ib, int64_t ie) {
        EXPECT_EQ(std::this_thread::get_id(), outer);
        for (int64_t j = ib; j < ie; ++j) c.hits[static_cast<size_t>(i * 16 + j)]++;
      });
    }
  });
  for (auto& h : c.hits) EXPECT_EQ(h.load(), 1);
}

TEST(TaskPool, ConcurrentCallersEachGetTheirRange) {
  ThreadCount count(2);
  constexpr int kCallers = 4, kRounds = 50;
  std::vector<std::unique_ptr<Coverage>> coverage;
  for (int t = 0; t < kCallers; ++t) coverage.push_back(std::make_unique<Coverage>(kRounds * 100));
  std::vector<std::thread> callers;
  for (int t = 0; t < kCallers; ++t)
    callers.emplace_back([&, t] {
      for (int r = 0; r < kRounds; ++r) {
        parallel_pieces(r * 100, (r + 1) * 100, 3, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) coverage[t]->hits[static_cast<size_t>(i)]++;
        });
      }
    });
  for (std::thread& t : callers) t.join();
  for (const auto& c : coverage)
    for (auto& h : c->hits) EXPECT_EQ(h.load(), 1);
}

// A forked child has none of the pool's threads; its regions must not wait for them.
TEST(TaskPool, RunsInlineInAForkedChild) {
  ThreadCount count(2);
  Coverage warm(64);
  cover(0, 64, 1, warm);  // the pool's workers exist before the fork
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::alarm(20);  // a hang ends the child by SIGALRM, which the parent reports
    Coverage c(1000);
    cover(0, 1000, 1, c);
    for (auto& h : c.hits)
      if (h.load() != 1) std::_Exit(2);
    std::_Exit(0);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the child was ended by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(TaskPool, SpinSettingIsChecked) {
  const char* before = std::getenv("DATANAS_SPIN_US");
  const std::string saved = before ? before : "";
  unsetenv("DATANAS_SPIN_US");
  EXPECT_EQ(kernels::pool_spin_microseconds(), 100);
  setenv("DATANAS_SPIN_US", "0", 1);
  EXPECT_EQ(kernels::pool_spin_microseconds(), 0);
  setenv("DATANAS_SPIN_US", "250", 1);
  EXPECT_EQ(kernels::pool_spin_microseconds(), 250);
  for (const char* bad : {"-1", "ten", "5us", "2000000"}) {
    setenv("DATANAS_SPIN_US", bad, 1);
    try {
      kernels::pool_spin_microseconds();
      ADD_FAILURE() << "accepted DATANAS_SPIN_US=" << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("DATANAS_SPIN_US"), std::string::npos) << e.what();
    }
  }
  if (before) {
    setenv("DATANAS_SPIN_US", saved.c_str(), 1);
  } else {
    unsetenv("DATANAS_SPIN_US");
  }
}

}  // namespace
}  // namespace datanas
