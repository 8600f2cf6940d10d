// RCU for ward's events: the reclamation scheme behind the lock-free raise path. A detail of
// event.h (src/events/rcu.cc implements it); nothing here is API.
//
// Who owns what: a thread's Reader record belongs to the registry (never freed, recycled when
// its thread exits); callbacks passed to defer() belong to the reclaimer thread until they run.
// Any thread may enter read sections; synchronize() and barrier() must be called outside one.
//
// Readers (raises) announce themselves in a per-thread Reader record: on entry to the outermost
// read section they store the current grace-period number into `ctr`, on exit they store 0. These
// are plain stores to a cache line only their thread writes; no fence, no read-modify-write.
//
// A writer that has unpublished something (a table) calls synchronize(): it advances the global
// grace-period number, issues membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which executes a full
// memory barrier on every CPU currently running one of our threads, and then waits until every
// Reader is either quiescent (ctr == 0) or in a section that began after the advance (ctr >= new
// number). The membarrier supplies the StoreLoad ordering the readers skipped: a reader whose
// entry store the writer could miss is guaranteed to load the new table pointer.
//
// Without a usable membarrier (kernel < 4.14, or a seccomp filter that forbids it) the writer on
// x86 uses the mprotect trick instead: revoking write access to a page it just wrote makes the
// kernel shoot down that TLB entry with an IPI on every CPU running one of our threads, and an
// interrupt is a full barrier there (.NET's FlushProcessWriteBuffers does the same). Elsewhere
// (where TLB invalidation may not interrupt other CPUs) readers add a seq_cst fence instead,
// decided once before any reader runs. WARD_RCU_FALLBACK=1 in the environment skips membarrier
// (so the fallback can be tested). Under ThreadSanitizer, which cannot see membarrier and (with g++'s
// -Wtsan) rejects std::atomic_thread_fence, the reader's entry store and the loads it protects are
// seq_cst instead, and the writer relies on seq_cst atomics alone; TSan then checks the
// happens-before edges (reader's release of ctr -> writer's acquire) that make reclamation safe.
//
// Sections nest: an inner section keeps the outer snapshot, so a handler may raise other events
// (or the same one).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

namespace ward::detail {

// Waits (with backoff) until `done()`; used for running async invocations and state destruction
// (and by rcu::barrier).
void wait_until(const std::function<bool()>& done) noexcept;

namespace rcu {

#if defined(__SANITIZE_THREAD__)
#define WARD_RCU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WARD_RCU_TSAN 1
#endif
#endif
#ifndef WARD_RCU_TSAN
#define WARD_RCU_TSAN 0
#endif
inline constexpr bool kTsan = WARD_RCU_TSAN != 0;
#if defined(__x86_64__) || defined(__i386__)
#define WARD_RCU_X86 1
#else
#define WARD_RCU_X86 0
#endif

// Orders for loads/stores of RCU-protected pointers and flags.
inline constexpr std::memory_order kLoad = kTsan ? std::memory_order_seq_cst : std::memory_order_acquire;
inline constexpr std::memory_order kStore = kTsan ? std::memory_order_seq_cst : std::memory_order_release;

// One per thread that has ever raised; never freed (recycled when its thread exits), so writers
// can scan the registry without locks. 128-byte aligned: a Reader's line is written only by its
// thread (and read by writers during a grace period), never shared with another thread's.
struct alignas(128) Reader {
  std::atomic<std::uint64_t> ctr{0};  // 0: quiescent; else grace period at outermost entry
  std::atomic<bool> in_use{false};
  Reader* next = nullptr;  // registry link; immutable once published
};

// The global grace-period number (starts at 1, so a snapshot is never 0), and whether readers
// need a real fence (never on x86). Read on every raise; written once per grace period.
struct alignas(128) Global {
  std::atomic<std::uint64_t> gp{1};
  std::atomic<bool> fence_readers{false};
};
extern Global g_global;

// This thread's Reader (nullptr until its first read section). Constant-initialised and
// trivially destructible, so access is a plain TLS load (no init wrapper call).
inline constinit thread_local Reader* tls_reader = nullptr;

// Registers the calling thread (slow path of the first read section of a thread).
Reader* register_thread() noexcept;

// RAII read-side section. Cheap: a TLS load, two loads and a store on entry, a store on exit.
class ReadGuard {
 public:
  ReadGuard() noexcept {
    Reader* r = tls_reader;
    if (r == nullptr) [[unlikely]]
      r = register_thread();
    r_ = r;
    saved_ = r->ctr.load(std::memory_order_relaxed);
    const std::uint64_t gp = g_global.gp.load(std::memory_order_acquire);
    const std::uint64_t v = saved_ != 0 ? saved_ : gp;
#if WARD_RCU_TSAN
    r->ctr.store(v, std::memory_order_seq_cst);
#else
    r->ctr.store(v, std::memory_order_release);
#if !WARD_RCU_X86
    if (g_global.fence_readers.load(std::memory_order_relaxed)) [[unlikely]]
      std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
    std::atomic_signal_fence(std::memory_order_seq_cst);  // keep the protected loads after
#endif
  }
  ~ReadGuard() {
    std::atomic_signal_fence(std::memory_order_seq_cst);  // keep the protected accesses before
    r_->ctr.store(saved_, std::memory_order_release);
  }
  ReadGuard(const ReadGuard&) = delete;
  ReadGuard& operator=(const ReadGuard&) = delete;

 private:
  Reader* r_;
  std::uint64_t saved_;
};

// True when the calling thread is inside a read section (i.e. inside a raise).
inline bool in_read_section() noexcept {
  const Reader* r = tls_reader;
  return r != nullptr && r->ctr.load(std::memory_order_relaxed) != 0;
}

// Waits until every read section in progress at the call has ended. Precondition: the caller is
// not in a read section (it would wait for itself); if it is, returns false without waiting.
bool synchronize() noexcept;

// Runs `fn` on the reclaimer thread after a grace period that starts after this call. Never
// blocks on readers; usable inside a read section. `fn` must not throw.
void defer(std::move_only_function<void()> fn) noexcept;

// Runs every callback deferred before this call (waiting for their grace period) before
// returning. Returns false (without waiting) inside a read section or on the reclaimer thread,
// where waiting could deadlock. Tests use it to observe deferred destruction deterministically.
bool barrier() noexcept;

}  // namespace rcu

}  // namespace ward::detail
