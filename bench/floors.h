// Physical floors for the cross-process call benchmark.
//
// Each floor is a Google Benchmark function that performs exactly ONE round trip per iteration,
// so the reported time per iteration is the round-trip time. They are the lower bounds that a
// cross-process call (ward's domains) is compared against:
//
//   floor/direct_call      an ordinary call through a function pointer the optimiser cannot see
//                          through (no process boundary at all)
//   floor/futex_same_cpu   futex ping-pong between two processes pinned to the same CPU
//   floor/futex_cross_cpu  futex ping-pong between two processes pinned to different CPUs
//   floor/spin_cross_cpu   spin ping-pong (atomics in shared memory, no syscalls) across CPUs
//   floor/socketpair       AF_UNIX SOCK_STREAM socketpair, 1 byte each way, no pinning
//
// The process-based floors fork a child before the timing loop, talk to it through a
// MAP_SHARED|MAP_ANONYMOUS page (or the socketpair), stop and reap it afterwards, and restore the
// calling thread's CPU affinity. The child dies with its parent (PR_SET_PDEATHSIG). Any failure
// kills and reaps the child and reports the benchmark with SkipWithError.
#pragma once

#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <functional>
#include <string_view>
#include <vector>

#include "ward/core/error.h"

namespace ward::bench {

// One row of the floors table: the exact Google Benchmark name and a short description.
struct FloorInfo {
  std::string_view name;
  std::string_view what;
};

// All floors, in the order register_floors() registers them.
inline constexpr std::array<FloorInfo, 5> kFloors{{
    {"floor/direct_call", "indirect call through a laundered function pointer"},
    {"floor/futex_same_cpu", "futex ping-pong, two processes on one CPU"},
    {"floor/futex_cross_cpu", "futex ping-pong, two processes on two CPUs"},
    {"floor/spin_cross_cpu", "spin ping-pong in shared memory, two CPUs, no syscalls"},
    {"floor/socketpair", "AF_UNIX socketpair, 1 byte each way, unpinned"},
}};

// Registers the floor benchmarks with Google Benchmark under the names in kFloors. Calling it
// more than once registers them only once.
void register_floors();

// Number of CPUs this process may run on (sched_getaffinity). The cross-CPU floors skip with
// "needs 2 CPUs" when this is < 2.
int usable_cpus();

// The spin_cross_cpu floor carrying work: before each request this process runs `send` (e.g.
// copies a buffer into memory it shares with the child), and the child, pinned to another CPU,
// runs `serve` (e.g. the function the request is for) before answering. Both must only touch
// memory mapped MAP_SHARED before the call (the child is forked inside). The floor of any call
// that moves data to another process and runs there. Skips with a reason like the other floors.
void run_spin_cross_cpu(benchmark::State& state, std::function<void()> send, std::function<void()> serve);

// The CPU ids usable by this process (from sched_getaffinity), sorted ascending.
std::vector<int> cpu_ids();

// The floor of a relay between two processes: `rounds` round trips, each a `request`-byte message
// from this process and a `reply`-byte answer, over AF_UNIX SOCK_SEQPACKET (one datagram each).
// hops = 1: a server process answers directly (the shape of a FUSE file system mounted directly:
// application, kernel, file system, back). hops = 2: the same server behind a relay process that
// reads each datagram whole with a blocking recv and sends it on (the shape of `ward fuse`, with
// the fewest system calls a relay can make: no poll, no deadline). Nobody is pinned. Returns the
// time of each round trip in microseconds, in order, or the failure in words; the processes are
// reaped before it returns, also on failure. Valid: hops 1 or 2, request and reply 1 byte to
// 1 MiB, rounds >= 1.
Result<std::vector<double>> relay_round_trips(int hops, std::size_t request, std::size_t reply, int rounds);

}  // namespace ward::bench
