// Ringing and waiting on a Doorbell (channel.h): the sender bumps the sequence word; the receiver
// spins for a while (the reply often comes back within microseconds when the peer runs on the
// other CPU), then announces it sleeps and blocks on the futex. Shared-memory futexes (no
// FUTEX_PRIVATE_FLAG) because the two sides are different processes.
#pragma once

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "ward/process/channel.h"

namespace ward::wire {

// Blocks while `*word == expected`, until woken or until CLOCK_MONOTONIC reaches `deadline_ns`
// (0: no deadline). The deadline is absolute on purpose: a waiter that is woken without cause
// re-enters with the same deadline, so spurious or hostile wake-ups cannot extend it
// (FUTEX_WAIT takes a relative timeout; FUTEX_WAIT_BITSET an absolute one).
inline long futex_wait_until(std::atomic<std::uint32_t>* word, std::uint32_t expected, std::uint64_t deadline_ns) {
  timespec ts{static_cast<time_t>(deadline_ns / 1000000000ull), static_cast<long>(deadline_ns % 1000000000ull)};
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_BITSET, expected,
                 deadline_ns ? &ts : nullptr, nullptr, FUTEX_BITSET_MATCH_ANY);
}

inline long futex_wake(std::atomic<std::uint32_t>* word, int n = 1) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, n, nullptr, nullptr, 0);
}

inline std::uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Publishes a message already written to shared memory. Seq-cst on both sides of the
// seq/sleeping pair (a Dekker handshake) so a sleeper can never miss the bump.
inline void ring(Doorbell& db) {
  db.seq.fetch_add(1, std::memory_order_seq_cst);
  if (db.sleeping.load(std::memory_order_seq_cst) != 0) futex_wake(&db.seq);
}

// Spins until `db.seq` differs from `last` or about `spin_ns` elapsed. True when it changed.
// The clock is read only after the first 64 pauses: a reply that comes back within them (the
// common case across CPUs) costs no clock reads here. (The caller still times the whole wait:
// spinning is charged like sleeping.)
inline bool spin_for_change(Doorbell& db, std::uint32_t last, std::uint64_t spin_ns) {
  if (db.seq.load(std::memory_order_acquire) != last) return true;
  if (spin_ns == 0) return false;
  std::uint64_t start = 0;
  for (unsigned i = 1;; ++i) {
    cpu_relax();
    if (db.seq.load(std::memory_order_acquire) != last) return true;
    if ((i & 63) == 0) {
      const std::uint64_t now = mono_ns();
      if (start == 0) start = now;
      else if (now - start >= spin_ns) return false;
    }
  }
}

// Decides how long a waiter spins. Spinning only pays when the peer runs on another CPU and
// answers within the spin window: on the same CPU it only delays the peer, and for replies that
// take longer than the window it burns a core for nothing. So a waiter skips the spin when the
// peer last waited on this CPU, or when the recent replies (an average over ~8, each sample
// clamped to four windows) were slower than twice the window; sleeping waits keep feeding the average, so spinning resumes once replies
// get fast again.
class SpinGovernor {
 public:
  explicit SpinGovernor(std::uint64_t max_ns = 0) : max_(max_ns) {}
  void set_max(std::uint64_t max_ns) { max_ = max_ns; }
  // Records this side's CPU in `mine` and returns the spin budget given the peer's doorbell.
  std::uint64_t budget(Doorbell& mine, const Doorbell& peer) {
    if (max_ == 0) return 0;
    const int cpu = sched_getcpu();
    // Written only on change: the line also carries the peer's messages.
    if (mine.cpu.load(std::memory_order_relaxed) != cpu) mine.cpu.store(cpu, std::memory_order_relaxed);
    if (cpu >= 0 && peer.cpu.load(std::memory_order_relaxed) == cpu) return 0;
    if (avg_ > 2 * max_) return 0;
    return max_;
  }
  // Forget the history (after start-up, whose long wait says nothing about calls).
  void reset() { avg_ = 0; }
  void observe(std::uint64_t waited_ns) {
    // Clamped, so one slow call stops the spinning for a few calls, not for dozens.
    if (waited_ns > 4 * max_) waited_ns = 4 * max_;
    const auto avg = static_cast<std::int64_t>(avg_);
    avg_ = static_cast<std::uint64_t>(avg + (static_cast<std::int64_t>(waited_ns) - avg) / 8);
  }

 private:
  std::uint64_t max_;
  std::uint64_t avg_ = 0;
};

// Sleeps until `db.seq` differs from `last`, or CLOCK_MONOTONIC reaches `deadline_ns` (0: no
// deadline). True when it changed. Wake-ups that change nothing are absorbed here and cost the
// waiter nothing: the deadline does not move.
inline bool sleep_for_change(Doorbell& db, std::uint32_t last, std::uint64_t deadline_ns) {
  db.sleeping.store(1, std::memory_order_seq_cst);
  bool changed = false;
  for (;;) {
    if (db.seq.load(std::memory_order_seq_cst) != last) { changed = true; break; }
    if (deadline_ns != 0 && mono_ns() >= deadline_ns) break;
    (void)futex_wait_until(&db.seq, last, deadline_ns);
  }
  db.sleeping.store(0, std::memory_order_relaxed);
  return changed;
}

}  // namespace ward::wire
