// Ringing and waiting on a Doorbell (wire.h): the sender bumps the sequence word; the receiver
// spins for a while (the reply often comes back within microseconds when the peer runs on the
// other CPU), then announces it sleeps and blocks on the futex. Shared-memory futexes (no
// FUTEX_PRIVATE_FLAG) because the two sides are different processes.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "ward/detail/wire.h"

namespace ward::wire {

inline long futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, const timespec* rel) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, rel, nullptr, 0);
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

// Spins until `db.seq` differs from `last` or `spin_ns` elapsed. True when it changed.
inline bool spin_for_change(Doorbell& db, std::uint32_t last, std::uint64_t spin_ns) {
  if (db.seq.load(std::memory_order_acquire) != last) return true;
  if (spin_ns == 0) return false;
  const std::uint64_t start = mono_ns();
  for (unsigned i = 1;; ++i) {
    cpu_relax();
    if (db.seq.load(std::memory_order_acquire) != last) return true;
    if ((i & 63) == 0 && mono_ns() - start >= spin_ns) return false;
  }
}

// Sleeps until `db.seq` differs from `last`, or `rel` (may be null: forever) passes. True when it
// changed. Spurious wake-ups are absorbed here.
inline bool sleep_for_change(Doorbell& db, std::uint32_t last, const timespec* rel) {
  db.sleeping.store(1, std::memory_order_seq_cst);
  bool changed = false;
  for (;;) {
    if (db.seq.load(std::memory_order_seq_cst) != last) { changed = true; break; }
    const long r = futex_wait(&db.seq, last, rel);
    if (r != 0 && errno == ETIMEDOUT) {
      changed = db.seq.load(std::memory_order_seq_cst) != last;
      break;
    }
  }
  db.sleeping.store(0, std::memory_order_relaxed);
  return changed;
}

}  // namespace ward::wire
