// RCU for ward's events: reader registry, grace periods, deferred reclamation.
// The design and the memory-ordering argument are in include/ward/events/detail/rcu.h.

#include "ward/events/detail/rcu.h"

#include <linux/membarrier.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace ward::detail {

void wait_until(const std::function<bool()>& done) noexcept {
  // Readers' sections are usually nanoseconds long, so spin first; a handler may also run for
  // milliseconds (a domain call), so back off to sleeping rather than burning a CPU.
  for (unsigned i = 0; !done(); ++i) {
    if (i < 128) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#elif defined(__aarch64__)
      asm volatile("yield" ::: "memory");
#endif
    } else if (i < 256) {
      sched_yield();
    } else {
      const unsigned shift = i - 256 < 6 ? i - 256 : 6;
      std::this_thread::sleep_for(std::chrono::microseconds(10u << shift));  // up to 640 us
    }
  }
}

namespace rcu {

constinit Global g_global;

namespace {

// Append-only list of every Reader ever created (records are recycled, never freed).
constinit std::atomic<Reader*> g_head{nullptr};

// Serialises grace periods (and thereby the writes of g_global.gp).
constinit std::mutex g_gp_mu;

// Set after this thread's exit hook ran: a later read section (from another thread_local's
// destructor) gets a record that is never recycled, instead of re-arming a destroyed hook.
constinit thread_local bool tls_exited = false;

[[noreturn]] void die(const char* what) noexcept {
  std::perror(what);
  std::abort();
}

enum class Barrier { none, membarrier, mprotect, fence };

// The page the mprotect fallback toggles (x86 only).
void* g_ipi_page = nullptr;

// How writers issue the asymmetric fence. Decided once, before the first read section of any
// thread (register_thread calls this) and before the first grace period, so the readers'
// fence_readers flag is settled before any reader looks at it.
Barrier barrier_kind() noexcept {
  static const Barrier kind = [] {
    if constexpr (kTsan) return Barrier::none;  // seq_cst atomics on both sides instead
    const char* force = std::getenv("WARD_RCU_FALLBACK");
    const bool forced = force != nullptr && force[0] == '1';
    if (!forced) {
      const long cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
      if (cmds >= 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
          syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
        return Barrier::membarrier;
    }
#if WARD_RCU_X86
    g_ipi_page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g_ipi_page == MAP_FAILED) die("ward: mmap for the event barrier page");
    return Barrier::mprotect;
#else
    g_global.fence_readers.store(true, std::memory_order_relaxed);
    return Barrier::fence;
#endif
  }();
  return kind;
}

// The writer's half of the asymmetric fence: a full barrier on every CPU running our threads.
// Called with g_gp_mu held (the mprotect page is not shared between writers).
void heavy_barrier() noexcept {
  switch (barrier_kind()) {
    case Barrier::none:
      return;
    case Barrier::membarrier:
      // Registered but failing would leave readers unfenced: we cannot continue safely.
      if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        die("ward: membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registration");
      return;
    case Barrier::mprotect: {
      // Make the page present and writable, dirty it, then revoke access: the kernel must flush
      // the TLB entry on every CPU that may cache it, i.e. IPI every CPU running our threads.
      if (mprotect(g_ipi_page, 4096, PROT_READ | PROT_WRITE) != 0) die("ward: mprotect (event barrier)");
      __atomic_fetch_add(static_cast<int*>(g_ipi_page), 1, __ATOMIC_SEQ_CST);
      if (mprotect(g_ipi_page, 4096, PROT_NONE) != 0) die("ward: mprotect (event barrier)");
      return;
    }
    case Barrier::fence:
#if !WARD_RCU_TSAN
      std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the readers' fences
#endif
      return;
  }
}

struct ExitHook {
  ~ExitHook() {
    if (Reader* r = tls_reader) {
      // A thread cannot be inside a section once it is exiting; clear it in case it left one
      // abnormally, so writers never wait for a dead thread.
      r->ctr.store(0, std::memory_order_release);
      tls_reader = nullptr;
      r->in_use.store(false, std::memory_order_release);
    }
    tls_exited = true;
  }
};

// ---- deferred reclamation -----------------------------------------------------------------------

// Batches are collected for this long before one grace period serves them all: bursts of binds
// then cost one membarrier, not one each.
constexpr auto kBatchWindow = std::chrono::milliseconds(2);

thread_local bool tls_is_reclaimer = false;

struct Deferred {
  std::mutex mu;
  std::condition_variable cv;       // reclaimer: work or stop
  std::condition_variable done_cv;  // barrier()/shutdown: a batch finished / reclaimer exited
  std::vector<std::move_only_function<void()>> pending;
  std::uint64_t taken = 0;      // batches taken by the reclaimer
  std::uint64_t completed = 0;  // batches it has finished (in order)
  bool started = false;
  bool idle = false;      // the reclaimer waits without timeout: defer() must notify it
  bool stopping = false;
  bool exited = false;
  std::thread thread;
};

// Leaked on purpose: used from atexit and from static destructors of other objects.
Deferred& deferred() {
  static Deferred* const d = new Deferred;
  return *d;
}

void run_batch(std::vector<std::move_only_function<void()>>& batch) noexcept {
  for (auto& f : batch) f();
  batch.clear();
}

void reclaimer_main() {
  tls_is_reclaimer = true;
  Deferred& d = deferred();
  std::unique_lock lk(d.mu);
  for (;;) {
    if (d.pending.empty()) {
      if (d.stopping) break;
      d.idle = true;
      d.cv.wait(lk, [&] { return !d.pending.empty() || d.stopping; });
      d.idle = false;
      continue;
    }
    if (!d.stopping) d.cv.wait_for(lk, kBatchWindow, [&] { return d.stopping; });
    std::vector<std::move_only_function<void()>> batch;
    batch.swap(d.pending);
    ++d.taken;
    lk.unlock();
    synchronize();
    run_batch(batch);
    lk.lock();
    ++d.completed;
    d.done_cv.notify_all();
  }
  d.exited = true;
  d.done_cv.notify_all();
}

// atexit: drain and stop the reclaimer. If it cannot finish within a second (a thread is stuck
// inside a raise), leave it running rather than hang the exit.
void stop_reclaimer() {
  Deferred& d = deferred();
  std::unique_lock lk(d.mu);
  if (!d.started || d.stopping) return;
  d.stopping = true;
  d.cv.notify_all();
  const bool done = d.done_cv.wait_for(lk, std::chrono::seconds(1), [&] { return d.exited; });
  lk.unlock();
  if (done && std::this_thread::get_id() != d.thread.get_id()) {
    d.thread.join();
  } else {
    d.thread.detach();
  }
}

}  // namespace

Reader* register_thread() noexcept {
  (void)barrier_kind();  // settles fence_readers before this thread's first section
  Reader* r = nullptr;
  for (Reader* p = g_head.load(std::memory_order_seq_cst); p != nullptr; p = p->next) {
    bool free = false;
    if (!p->in_use.load(std::memory_order_relaxed) &&
        p->in_use.compare_exchange_strong(free, true, std::memory_order_acq_rel)) {
      r = p;
      break;
    }
  }
  if (r == nullptr) {
    r = new (std::nothrow) Reader;
    if (r == nullptr) {
      std::fputs("ward: out of memory registering an event reader\n", stderr);
      std::abort();
    }
    r->in_use.store(true, std::memory_order_relaxed);
    Reader* head = g_head.load(std::memory_order_relaxed);
    do {
      r->next = head;
    } while (!g_head.compare_exchange_weak(head, r, std::memory_order_seq_cst, std::memory_order_relaxed));
  }
  tls_reader = r;
  if (!tls_exited) {
    static thread_local ExitHook hook;  // constructed now; recycles the record at thread exit
    (void)hook;
  }
  return r;
}

bool synchronize() noexcept {
  if (in_read_section()) return false;
  (void)barrier_kind();
  std::lock_guard lk(g_gp_mu);
  const std::uint64_t target = g_global.gp.load(std::memory_order_relaxed) + 1;
  g_global.gp.store(target, kTsan ? std::memory_order_seq_cst : std::memory_order_release);
  heavy_barrier();
  for (Reader* r = g_head.load(std::memory_order_seq_cst); r != nullptr; r = r->next) {
    const auto quiescent = [r, target] {
      const std::uint64_t v = r->ctr.load(kTsan ? std::memory_order_seq_cst : std::memory_order_acquire);
      return v == 0 || v >= target;
    };
    if (!quiescent()) wait_until(quiescent);
  }
  return true;
}

void defer(std::move_only_function<void()> fn) noexcept {
  Deferred& d = deferred();
  std::unique_lock lk(d.mu);
  if (d.stopping) {
    // After exit began: no reclaimer. Run it here if we may wait; else it is never run (the
    // memory stays reachable; the process is ending).
    if (!in_read_section()) {
      lk.unlock();
      synchronize();
      fn();
    } else {
      d.pending.push_back(std::move(fn));
    }
    return;
  }
  d.pending.push_back(std::move(fn));
  if (!d.started) {
    d.started = true;
    try {
      d.thread = std::thread(reclaimer_main);
      std::atexit(stop_reclaimer);
    } catch (const std::system_error&) {
      std::fputs("ward: cannot start the event reclaimer thread\n", stderr);
      std::abort();
    }
  }
  if (d.idle) {
    d.idle = false;
    d.cv.notify_one();
  }
}

bool barrier() noexcept {
  if (in_read_section() || tls_is_reclaimer) return false;
  Deferred& d = deferred();
  std::vector<std::move_only_function<void()>> batch;
  {
    std::unique_lock lk(d.mu);
    batch.swap(d.pending);
    const std::uint64_t target = d.taken;  // batches taken before us must finish too
    d.done_cv.wait(lk, [&] { return d.completed >= target || d.exited; });
  }
  synchronize();
  run_batch(batch);
  return true;
}

}  // namespace rcu
}  // namespace ward::detail
