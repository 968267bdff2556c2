// The native kernels' own thread pool. LibTorch's at::parallel_for runs on OpenMP, whose idle
// threads either spin for a long while (libgomp's default: a core taken from whatever else runs
// beside, README "Threads on a shared machine") or, under OMP_WAIT_POLICY=passive, sleep at
// the end of every parallel region and are woken by the kernel at the start of the next. A
// search step runs thousands of short regions with little set-up between them, and on a
// virtual machine (2-core AMD EPYC) each wake-up cost more than many of the regions: one core sat
// idle for about a fifth of a cifar step. Here a worker spins for a bounded time after each
// region (DATANAS_SPIN_US, default 100 microseconds) before it sleeps, and a region is cut into
// several pieces per thread, taken in turn, so a worker that wakes late finds work left.
#pragma once
#include <cstdint>
#include <functional>

namespace datanas {
namespace kernels {

// fn(b, e) over pieces [b, e) that cover [begin, end), each at least `grain` long (except the
// last), on up to at::get_num_threads() threads (the caller is one of them); returns when all
// are done and rethrows the first exception a piece threw. Inside a piece, inside an OpenMP
// region, or where the range is one grain, fn(begin, end) runs on the calling thread.
void parallel_pieces(int64_t begin, int64_t end, int64_t grain,
                     const std::function<void(int64_t, int64_t)>& fn);

// Microseconds a worker spins for the next region before it sleeps: DATANAS_SPIN_US when set
// (0 sleeps at once; an Error unless 0-1000000), else 100. Read when the pool starts.
int64_t pool_spin_microseconds();

}  // namespace kernels
}  // namespace datanas
