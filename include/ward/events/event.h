// Event: SPIN-style events for ward. An event has an owner and any number of handlers; raising it
// calls, in order, every handler whose guard accepts the arguments and combines their results.
// Extensions (or host code) bind handlers dynamically; the event's owner authorizes every bind
// and may impose a guard of its own.
//
//   ward::Event<int(int)> ev("net.packet", "netstack");
//   auto b = ev.bind({"filter"}, [](int x) { return x * 2; });     // Result<Binding>
//   ward::Raised r = ev.raise(21);                                   // r.value == 42 (combine::last)
//
// Design (why it is built this way):
//  - The raise path is the hot path and must cost about as much as an indirect call. It takes no
//    lock, does no atomic read-modify-write, allocates nothing (unless a handler fails) and copies
//    no std::function: it loads an immutable, contiguous handler table through one atomic pointer
//    and calls each entry through a raw function pointer ("trampoline") instantiated for the
//    handler's exact type, so a lambda handler costs one indirect call.
//  - Writers (bind, unbind, set_default) build a new table under a per-event mutex and publish it
//    with one atomic store. Old tables, and the state of unbound handlers, are reclaimed after an
//    RCU grace period: readers only store to a thread-private word on entry and exit (see
//    detail::rcu below); writers pay for the ordering with membarrier(2).
//  - Async handlers (BindOptions::async) run on ward::WorkerPool::default_pool() with copies of the
//    arguments. The raise does not wait for them and their results are not combined; failures are
//    counted (async_failures()).
//  - Raises nest (a handler may raise, also through an extension's host service), but not without
//    bound: NestingLimits (16 raises of one event, 64 of any, per thread by default) turns the
//    stack overflow of a handler that re-raises for ever into an Errc::limit failure. Counting
//    costs the raise a thread-local counter and one store.
//  - Errors are values: bind returns Result<Binding>; a handler's error (Result / Handled with an
//    error, or an exception) is reported in Raised::failed and the raise carries on. Nothing
//    throws out of this API (but see "Allocation failure" below).
//
// Thread safety: raise, bind, unbind, set_default, unbind_domain, bound and async_failures may be
// called concurrently from any threads. Constructing and destroying the Event itself are not
// concurrent with anything else on it (as for any object): no raise of this event may be in
// progress when its destructor starts, and no handler of the event may destroy the event.
//
// The unbind guarantee (what makes it safe to destroy a handler's captured state):
//   When Binding::unbind() or ~Binding returns, no raise will call that handler any more, no raise
//   is still running it, and its async invocations have finished or will never start; the handler
//   object itself (and its guard) has been destroyed.
// Exception: a thread that is itself inside a raise (of any event, e.g. a handler unbinding itself
// or another handler) or inside an async handler cannot wait for that without risking deadlock.
// There, unbind unlinks the handler at once (no raise ordered after the unbind calls it, and the
// rest of the current raise skips it) but does not wait: other threads may still be running it
// when unbind returns. Its state is destroyed later, once every raise and async invocation that
// could still be using it has finished, on ward's reclaimer thread (within a few milliseconds) or
// in detail::rcu::barrier().
//
// Cost of the guarantee: unbind waits for a grace period, i.e. until every raise of ANY event that
// was in progress when it started has returned (and for running async invocations of the handler
// being unbound). A slow synchronous handler therefore delays unbinds process-wide; and unbinding
// (or destroying an Event) while holding a lock that a handler takes deadlocks. bind never waits.
//
// Allocation failure: bind reports Errc::limit. Elsewhere (unbind, set_default, recording a
// handler's failure) std::bad_alloc is not caught; in the noexcept paths it terminates.
//
// fork(): as with any multithreaded library, a forked child (without exec) may raise events but
// must not bind or unbind: the reader records of threads that do not exist in the child would
// never become quiescent. (ward's domains use posix_spawn, which is unaffected.)
#pragma once

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <expected>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "ward/events/detail/raise_stack.h"
#include "ward/core/error.h"
#include "ward/events/worker_pool.h"

namespace ward {

// ---- the public vocabulary ----------------------------------------------------------------------

// Who asks to bind: host code (domain == nullptr) or an extension running in a domain. `domain` is
// opaque to events: it is only compared by identity (Event::unbind_domain) and handed to the
// authorizer.
struct Binder {
  std::string name;
  const void* domain = nullptr;
};

enum class Order { first, last };

struct BindOptions {
  // Unique per event when non-empty. Used by before/after and, if set, in failure reports.
  std::string name;
  // first: in front of every handler bound so far; last: after them. Ignored when before/after is
  // set.
  Order order = Order::last;
  // Immediately before / immediately after the binding with that name (misuse error if no binding
  // has that name). Both may be set if `after` precedes `before`; the handler then goes right after
  // `after`.
  std::string before, after;
  // Run on the worker pool with copies of the arguments; the raise neither waits for it nor
  // combines its result. Its guard still runs on the raising thread.
  bool async = false;
};

// A handler may return R, Result<R> or Handled<R> (or the same with a type convertible to R).
// `stop` ends the raise after this handler (whether or not it succeeded): later handlers,
// synchronous or async, are not invoked.
template <class R>
struct Handled {
  Result<R> value;
  bool stop = false;
};

// The owner's decision on a bind request. `imposed_guard` (if set) is ANDed with the binder's own
// guard: the handler runs only when both accept. It is evaluated after the binder's guard.
template <class... Args>
struct Authorization {
  bool allowed = true;
  std::string reason;  // why refused; becomes the detail of the Errc::violation bind returns
  std::function<bool(const Args&...)> imposed_guard;
};

// One handler that failed during a raise. `binding` is the binding's name (BindOptions::name), or
// the binder's name if that was empty, or "binding#<n>". `error` is the handler's error; its
// `plugin` and `function` are filled in with the binder's and the event's name when the handler
// left them empty. A handler that threw is reported as Errc::crashed, "handler threw: <what()>";
// a guard that threw as Errc::crashed, "guard threw: <what()>" (the handler is then not run).
// (R is unused; it is kept so the spelling HandlerFailure<R> of the API stays valid.)
template <class R = void>
struct HandlerFailure {
  std::string binding;
  Error error;
};

// What raise() returns.
template <class T>
struct Raised {
  T value{};                                // the combiner's result
  std::size_t ran = 0;                      // handlers run on the raising thread, default included
  std::vector<HandlerFailure<>> failed;     // handlers that returned an error; the raise carried on
  [[nodiscard]] bool ok() const noexcept { return failed.empty(); }
};

// The "no guard" guard (the default of bind's G).
struct no_guard {};

// How deeply raises may nest on one thread. A handler that raises an event (directly, or through
// an extension whose host service raises one: a domain handler) runs that raise on the same
// stack, inside its own; a handler that raises its own event for ever, or two events whose
// handlers raise each other, would overflow the host's stack (a crossing into a domain and back
// costs several KiB of it per level). Every raise checks both bounds before running any handler.
// A raise beyond either runs no handler: it returns the combiner's empty result, ran == 0 and one
// failure, binding "<nesting>", Errc::limit, whose detail names the event and the depth; the
// raise that called it (one level out) goes on normally. Raises on other threads do not count,
// nor do async handlers (they run on pool threads, on their own stacks).
struct NestingLimits {
  // Raises of this event in progress on the calling thread, the new one included.
  unsigned same_event = 16;
  // Raises of any event in progress on the calling thread, the new one included. Checked against
  // the setting of the event being raised: when every event keeps the default, no thread nests
  // more than 64 raises (at a few KiB per domain crossing, well inside a default 8 MiB stack).
  // At most 256 (larger values are taken as 256).
  unsigned any_event = 64;
};

// ---- combiners ----------------------------------------------------------------------------------
// A combiner is any default-constructible class with
//   using result_type = ...;   void add(const R&);   result_type finish() &&;
// (for events returning void: void add();). A fresh combiner is made for every raise; add() is
// called with the value of every synchronous handler that succeeded, in order; finish() once.
namespace combine {

namespace detail {
// Storage for last/first_success. For small trivially copyable R it is a plain value plus a flag
// rather than an optional: the value is then always initialised, so g++ keeps it in a register
// on the one-handler raise path instead of parking a maybe-uninitialised payload on the stack
// (a store-forwarding round trip on the critical path). finish() rebuilds the optional from the
// value for the same reason (a wide copy of a just-written optional defeats store forwarding).
template <class R, bool Plain = std::is_trivially_copyable_v<R> && std::is_default_constructible_v<R> &&
                                sizeof(R) <= 2 * sizeof(void*)>
class Maybe {
 public:
  bool has() const noexcept { return v_.has_value(); }
  template <class V>
  void set(V&& v) {
    v_ = std::forward<V>(v);
  }
  std::optional<R> take() && {
    if (v_) return std::move(*v_);
    return std::nullopt;
  }

 private:
  std::optional<R> v_;
};
template <class R>
class Maybe<R, true> {
 public:
  bool has() const noexcept { return has_; }
  void set(const R& v) noexcept {
    v_ = v;
    has_ = true;
  }
  std::optional<R> take() && noexcept {
    if (has_) return v_;
    return std::nullopt;
  }

 private:
  R v_{};
  bool has_ = false;
};
}  // namespace detail

// The value of the last handler that succeeded (nullopt if none did).
template <class R>
class last {
 public:
  using result_type = std::optional<R>;
  void add(const R& v) { v_.set(v); }
  void add(R&& v) { v_.set(std::move(v)); }
  result_type finish() && { return std::move(v_).take(); }

 private:
  detail::Maybe<R> v_;
};

// The value of the first handler that succeeded (nullopt if none did). Later handlers still run.
template <class R>
class first_success {
 public:
  using result_type = std::optional<R>;
  void add(const R& v) {
    if (!v_.has()) v_.set(v);
  }
  void add(R&& v) {
    if (!v_.has()) v_.set(std::move(v));
  }
  result_type finish() && { return std::move(v_).take(); }

 private:
  detail::Maybe<R> v_;
};

// true if every handler that succeeded returned true (so true if none ran).
class all_true {
 public:
  using result_type = bool;
  void add(bool v) noexcept { v_ = v_ && v; }
  result_type finish() && noexcept { return v_; }

 private:
  bool v_ = true;
};

// true if any handler that succeeded returned true (so false if none ran).
class any_true {
 public:
  using result_type = bool;
  void add(bool v) noexcept { v_ = v_ || v; }
  result_type finish() && noexcept { return v_; }

 private:
  bool v_ = false;
};

// The sum of the values, starting from R{}.
template <class R>
class sum {
 public:
  using result_type = R;
  void add(const R& v) { v_ += v; }
  result_type finish() && { return std::move(v_); }

 private:
  R v_{};
};

// Every value, in handler order.
template <class R>
class collect {
 public:
  using result_type = std::vector<R>;
  void add(const R& v) { v_.push_back(v); }
  void add(R&& v) { v_.push_back(std::move(v)); }
  result_type finish() && { return std::move(v_); }

 private:
  std::vector<R> v_;
};

// For events returning void: nothing to combine.
class none {
 public:
  using result_type = std::monostate;
  void add() noexcept {}
  result_type finish() && noexcept { return {}; }
};

}  // namespace combine

namespace detail {

// ---- RCU: the reclamation scheme behind the lock-free raise path -------------------------------
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

// ---- handler nodes, tables and the shared event core --------------------------------------------

// Nonzero while the calling thread runs an async handler (tasks set it around the call).
inline constinit thread_local int tls_async_depth = 0;

// ---- nesting: RaiseFrame (detail/raise_stack.h) counts the raises in progress on this thread ----

// The failure a raise at `f` reports when it is beyond `lim`; nothing when it is within.
[[gnu::cold]] std::optional<HandlerFailure<>> nesting_refusal(const RaiseFrame& f, NestingLimits lim,
                                                              const std::string& event, const std::string& owner);

// May the calling thread wait for readers and async invocations? Not inside a raise or an async
// handler: they may be what we would wait for.
inline bool may_wait() noexcept { return tls_async_depth == 0 && !rcu::in_read_section(); }

// A handler argument as passed through trampolines: small trivially copyable values by value
// (registers), everything else by lvalue reference to the raise's own parameter (no copies).
template <class A>
using param_t = std::conditional_t<!std::is_reference_v<A> && std::is_trivially_copyable_v<A> &&
                                       sizeof(A) <= 2 * sizeof(void*),
                                   A, std::add_lvalue_reference_t<A>>;

using Failures = std::vector<HandlerFailure<>>;

inline constexpr std::uint8_t kHasValue = 1;  // the handler produced a value: combine it
inline constexpr std::uint8_t kStop = 2;      // the handler asked to stop the raise
inline constexpr std::uint8_t kFailed = 4;    // the handler (or guard) failed: take_failure()

// What a trampoline returns. For small trivially copyable R it is {R, status}: 16 bytes, returned
// in registers, so the single-handler path never goes through memory.
template <class R>
consteval bool small_outcome() {
  if constexpr (std::is_void_v<R>)
    return false;
  else
    return std::is_trivially_copyable_v<R> && std::is_default_constructible_v<R> && sizeof(R) <= sizeof(void*);
}
template <class R>
inline constexpr bool kSmallOutcome = small_outcome<R>();

template <class R, bool Small = kSmallOutcome<R>>
struct Outcome {
  std::optional<R> value;
  std::uint8_t status = 0;
  R&& get() noexcept { return std::move(*value); }
  template <class V>
  static Outcome ok(V&& v, std::uint8_t extra) {
    return Outcome{std::optional<R>(std::in_place, std::forward<V>(v)), static_cast<std::uint8_t>(kHasValue | extra)};
  }
  static Outcome nothing(std::uint8_t extra) noexcept { return Outcome{std::nullopt, extra}; }
};
template <class R>
struct Outcome<R, true> {
  R value{};
  std::uint8_t status = 0;
  R&& get() noexcept { return std::move(value); }
  template <class V>
  static Outcome ok(V&& v, std::uint8_t extra) {
    return Outcome{static_cast<R>(std::forward<V>(v)), static_cast<std::uint8_t>(kHasValue | extra)};
  }
  static Outcome nothing(std::uint8_t extra) noexcept { return Outcome{R{}, extra}; }
};
template <>
struct Outcome<void, false> {
  std::uint8_t status = 0;
  static Outcome ok(std::uint8_t extra) noexcept { return Outcome{static_cast<std::uint8_t>(kHasValue | extra)}; }
  static Outcome nothing(std::uint8_t extra) noexcept { return Outcome{extra}; }
};

template <class T>
struct is_handled : std::false_type {};
template <class R>
struct is_handled<Handled<R>> : std::true_type {};
template <class T>
struct is_result : std::false_type {};
template <class T>
struct is_result<std::expected<T, Error>> : std::true_type {};
// U of a Result<U> or Handled<U>.
template <class T>
struct carried;
template <class U>
struct carried<std::expected<U, Error>> {
  using type = U;
};
template <class U>
struct carried<Handled<U>> {
  using type = U;
};
template <class T>
struct is_std_function : std::false_type {};
template <class S>
struct is_std_function<std::function<S>> : std::true_type {};

class CoreBase;

// One bound handler (or the default handler). Shared by the event (while linked), the Binding,
// and queued async invocations; `refs` counts them and the last release deletes the node. The
// handler object inside is destroyed earlier, exactly once (destroy_state_once), when the
// unbind guarantee allows it.
class NodeBase {
 public:
  NodeBase() = default;
  NodeBase(const NodeBase&) = delete;
  NodeBase& operator=(const NodeBase&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void destroy_state_once() noexcept {
    if (!state_gone.exchange(true, std::memory_order_acq_rel)) destroy_state();
  }

  std::atomic<bool> live{true};        // false once unbound; async invocations check it
  std::atomic<bool> state_gone{false};  // the handler object has been destroyed
  // Async nodes: invocations in progress, and "unbound; the last invocation destroys the state".
  std::atomic<std::uint32_t> running{0};
  std::atomic<bool> orphan{false};
  bool async = false;
  bool linked = false;     // in its event's list; guarded by the event core's mutex
  std::string name;        // BindOptions::name (may be empty)
  std::string label;       // name used in failure reports
  std::string binder;      // Binder::name
  std::string event;       // the event's name (fills Error::function)
  const void* domain = nullptr;

 protected:
  virtual ~NodeBase() = default;
  virtual void destroy_state() noexcept = 0;

 private:
  std::atomic<std::uint32_t> refs_{1};
};

// Failures travel out of band: a trampoline that sees its handler fail stashes the failure in a
// per-thread stack and returns kFailed; the raise takes it back right away. The common path thus
// never touches the failure list (nor makes its address escape), which keeps a raise's result in
// registers. All four are cold, out-of-line functions.
// Stashes a failure of `n` (fills plugin/function if the handler left them empty).
void stash_failure(const NodeBase& n, Error e) noexcept;
// Stashes an exception caught from `n`'s handler ("handler threw: ...") or guard.
void stash_exception(const NodeBase& n, std::exception_ptr ex, const char* what_threw) noexcept;
// Pops the failure stashed last on this thread.
HandlerFailure<> take_failure() noexcept;
// take_failure() into `failed`.
void note_failure(Failures& failed) noexcept;

// Holds one reference on a node (async tasks use it so a queued task keeps its node alive).
class NodeRef {
 public:
  explicit NodeRef(NodeBase* n) noexcept : n_(n) {}
  NodeRef(NodeRef&& o) noexcept : n_(std::exchange(o.n_, nullptr)) {}
  NodeRef& operator=(NodeRef&&) = delete;
  ~NodeRef() {
    if (n_ != nullptr) n_->release();
  }
  NodeBase* get() const noexcept { return n_; }

 private:
  NodeBase* n_;
};

// The state an Event shares with its Bindings and async tasks: it outlives the Event while any
// of them remains, so a late unbind or a late async invocation finds a valid object.
class CoreBase {
 public:
  CoreBase(std::string name, std::string owner) : name_(std::move(name)), owner_(std::move(owner)) {}
  virtual ~CoreBase() = default;
  CoreBase(const CoreBase&) = delete;
  CoreBase& operator=(const CoreBase&) = delete;

  // Unlinks `n` (if still linked) and retires it; see the unbind guarantee above.
  virtual void unbind(NodeBase* n) noexcept = 0;

  const std::string& name() const noexcept { return name_; }
  const std::string& owner() const noexcept { return owner_; }
  std::atomic<std::uint64_t> async_failures{0};

 private:
  const std::string name_, owner_;
};

// Waits (with backoff) until `done()`; used for running async invocations and state destruction.
void wait_until(const std::function<bool()>& done) noexcept;

// Retires a table that was unpublished and the nodes that were unlinked with it: frees the table
// and destroys the nodes' states once no raise or async invocation can use them, then drops the
// event's reference on each node. Waits when may_wait(), defers otherwise.
void retire(void* table, void (*free_table)(void*) noexcept, std::vector<NodeBase*> nodes) noexcept;

// A table unpublished by bind: only the table needs a grace period; never waits.
void retire_table(void* table, void (*free_table)(void*) noexcept) noexcept;

// Unbind of a node that someone else already unlinked: wait (if allowed) until its state is gone.
void await_retired(NodeBase* n) noexcept;

// Event-typed parts.
template <class R, class... Args>
struct Entry {
  using Call = Outcome<R> (*)(NodeBase*, param_t<Args>...) noexcept;
  // Returns 0 (refuse), 1 (accept) or kFailed (the guard threw: refuse, and take_failure()).
  using Guard = std::uint8_t (*)(NodeBase*, param_t<Args>...) noexcept;
  using Launch = void (*)(NodeBase*, const std::shared_ptr<CoreBase>&, param_t<Args>...) noexcept;
  Call call = nullptr;
  Guard guard = nullptr;    // nullptr: accepts everything (no call at all)
  Launch launch = nullptr;  // non-null: async handler
  NodeBase* node = nullptr;
};

template <class R, class... Args>
class TypedNode : public NodeBase {
 public:
  Entry<R, Args...> entry;
};

// The immutable handler table: a header followed by `n` entries, then the default handler's
// entry if has_default. Published through one atomic pointer; never modified after publication.
template <class E>
struct Table {
  // What raise's inline fast path needs to know, in one byte it loads anyway.
  static constexpr std::uint8_t kGeneral = 0;        // anything else: the out-of-line run()
  static constexpr std::uint8_t kSingle = 1;         // one synchronous handler, no guard
  static constexpr std::uint8_t kSingleGuarded = 2;  // one synchronous handler with a guard

  std::uint32_t n = 0;
  std::uint8_t shape = kGeneral;
  bool has_default = false;

  static constexpr std::size_t kEntriesOffset = (sizeof(std::uint64_t) + alignof(E) - 1) / alignof(E) * alignof(E);
  static constexpr std::align_val_t kAlign{64};

  const E* entries() const noexcept {
    return std::launder(reinterpret_cast<const E*>(reinterpret_cast<const char*>(this) + kEntriesOffset));
  }
  static Table* make(std::uint32_t n, bool has_default, const E* src) {
    const std::size_t count = n + (has_default ? 1 : 0);
    void* mem = ::operator new(kEntriesOffset + count * sizeof(E), kAlign);
    Table* t = new (mem) Table;
    t->n = n;
    t->has_default = has_default;
    for (std::size_t i = 0; i < count; ++i) new (static_cast<char*>(mem) + kEntriesOffset + i * sizeof(E)) E(src[i]);
    if (n == 1 && src[0].launch == nullptr) t->shape = src[0].guard == nullptr ? kSingle : kSingleGuarded;
    return t;
  }
  static void destroy(void* p) noexcept {
    static_assert(std::is_trivially_destructible_v<E>);
    ::operator delete(p, kAlign);
  }
};
static_assert(sizeof(Table<Entry<int, int>>) <= sizeof(std::uint64_t));

template <class R, class... Args>
class EventCore final : public CoreBase {
 public:
  using E = Entry<R, Args...>;
  using T = Table<E>;
  using Node = TypedNode<R, Args...>;

  EventCore(std::string name, std::string owner, std::atomic<const T*>* slot)
      : CoreBase(std::move(name), std::move(owner)), slot_(slot) {
    slot_->store(T::make(0, false, nullptr), std::memory_order_release);
  }

  // Links `n` where `opts` says. On error the node is not linked (the caller disposes of it).
  Result<void> insert(Node* n, const BindOptions& opts) {
    std::unique_lock lk(mu_);
    if (slot_ == nullptr) return fail(Errc::misuse, "event is being destroyed");
    if (!opts.name.empty() && find(opts.name) != kNone)
      return fail(Errc::misuse, "a binding named '" + opts.name + "' is already bound to " + name());
    std::size_t pos = opts.order == Order::first ? 0 : list_.size();
    if (!opts.before.empty() || !opts.after.empty()) {
      std::size_t lo = 0, hi = list_.size();
      if (!opts.after.empty()) {
        const std::size_t i = find(opts.after);
        if (i == kNone) return fail(Errc::misuse, "no binding named '" + opts.after + "' on " + name());
        lo = i + 1;
      }
      if (!opts.before.empty()) {
        const std::size_t i = find(opts.before);
        if (i == kNone) return fail(Errc::misuse, "no binding named '" + opts.before + "' on " + name());
        hi = i;
      }
      if (lo > hi)
        return fail(Errc::misuse, "cannot be after '" + opts.after + "' and before '" + opts.before + "'");
      pos = opts.after.empty() ? hi : lo;
    }
    list_.reserve(list_.size() + 1);  // may throw; after it, nothing below does until publish()
    const auto it = list_.insert(list_.begin() + static_cast<std::ptrdiff_t>(pos), n);
    n->linked = true;
    const T* old;
    try {
      old = publish();  // allocates before it publishes: on failure nothing was published
    } catch (...) {
      list_.erase(it);
      n->linked = false;
      throw;
    }
    lk.unlock();
    retire_table(const_cast<T*>(old), &T::destroy);
    return {};
  }

  void unbind(NodeBase* nb) noexcept override {
    std::unique_lock lk(mu_);
    if (!nb->linked) {
      lk.unlock();
      await_retired(nb);
      return;
    }
    unlink_locked(nb);
    const T* old = publish();
    lk.unlock();
    retire(const_cast<T*>(old), &T::destroy, {nb});
  }

  // Replaces the default handler (nullptr clears it).
  void set_default(Node* n) noexcept {
    std::unique_lock lk(mu_);
    if (slot_ == nullptr) {
      lk.unlock();
      if (n != nullptr) retire(nullptr, nullptr, {n});
      return;
    }
    Node* prev = std::exchange(default_, n);
    if (n != nullptr) n->linked = true;
    if (prev != nullptr) {
      prev->linked = false;
      prev->live.store(false, rcu::kStore);
    }
    const T* old = publish();
    lk.unlock();
    std::vector<NodeBase*> gone;
    if (prev != nullptr) gone.push_back(prev);
    retire(const_cast<T*>(old), &T::destroy, std::move(gone));
  }

  std::size_t unbind_domain(const void* domain) noexcept {
    std::unique_lock lk(mu_);
    if (slot_ == nullptr) return 0;
    std::vector<NodeBase*> gone;
    for (Node* n : list_)
      if (n->domain == domain) gone.push_back(n);
    if (gone.empty()) return 0;
    for (NodeBase* n : gone) unlink_locked(n);
    const T* old = publish();
    lk.unlock();
    const std::size_t count = gone.size();
    retire(const_cast<T*>(old), &T::destroy, std::move(gone));
    return count;
  }

  // The Event is going away: unlink everything and stop publishing into it.
  void close() noexcept {
    std::unique_lock lk(mu_);
    std::vector<NodeBase*> gone;
    for (Node* n : list_) {
      n->linked = false;
      n->live.store(false, rcu::kStore);
      gone.push_back(n);
    }
    list_.clear();
    if (default_ != nullptr) {
      default_->linked = false;
      default_->live.store(false, rcu::kStore);
      gone.push_back(std::exchange(default_, nullptr));
    }
    const T* old = slot_->exchange(nullptr, std::memory_order_acq_rel);
    slot_ = nullptr;
    count_.store(0, std::memory_order_relaxed);
    lk.unlock();
    retire(const_cast<T*>(old), &T::destroy, std::move(gone));
  }

  std::size_t bound() const noexcept { return count_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);

  std::size_t find(const std::string& name) const {
    for (std::size_t i = 0; i < list_.size(); ++i)
      if (list_[i]->name == name) return i;
    return kNone;
  }

  void unlink_locked(NodeBase* nb) {
    for (auto it = list_.begin(); it != list_.end(); ++it) {
      if (*it == nb) {
        list_.erase(it);
        break;
      }
    }
    nb->linked = false;
    nb->live.store(false, rcu::kStore);
  }

  // Builds and publishes a table for the current list; returns the one it replaced.
  const T* publish() {
    std::vector<E> entries;
    entries.reserve(list_.size() + 1);
    for (Node* n : list_) entries.push_back(n->entry);
    if (default_ != nullptr) entries.push_back(default_->entry);
    const T* t = T::make(static_cast<std::uint32_t>(list_.size()), default_ != nullptr, entries.data());
    count_.store(list_.size(), std::memory_order_relaxed);
    return slot_->exchange(t, rcu::kTsan ? std::memory_order_seq_cst : std::memory_order_acq_rel);
  }

  std::mutex mu_;
  std::atomic<const T*>* slot_;  // the Event's table pointer; nullptr once the Event is closed
  std::vector<Node*> list_;      // bound handlers, in raise order
  Node* default_ = nullptr;
  std::atomic<std::size_t> count_{0};
};

template <class Sig>
struct signature;
template <class R, class... Args>
struct signature<R(Args...)> {
  using default_combiner = std::conditional_t<std::is_void_v<R>, combine::none, combine::last<R>>;
};

// The concrete node for handler type H and guard type G, with its three trampolines.
template <class H, class G, class R, class... Args>
class Node final : public TypedNode<R, Args...> {
 public:
  using Imposed = std::function<bool(const Args&...)>;
  Node(H h, G g, Imposed imposed) : handler_(std::move(h)), guard_(std::move(g)), imposed_(std::move(imposed)) {}

  static Outcome<R> call(NodeBase* nb, param_t<Args>... args) noexcept {
    Node& n = static_cast<Node&>(*nb);
    try {
      using Ret = std::invoke_result_t<H&, param_t<Args>&...>;
      if constexpr (is_handled<std::remove_cvref_t<Ret>>::value) {
        Ret h = std::invoke(*n.handler_, args...);
        const std::uint8_t stop = h.stop ? kStop : 0;
        if constexpr (std::is_void_v<R>) {
          if (h.value) return Outcome<R>::ok(stop);
        } else {
          if (h.value) return Outcome<R>::ok(std::move(*h.value), stop);
        }
        stash_failure(n, std::move(h.value.error()));
        return Outcome<R>::nothing(stop | kFailed);
      } else if constexpr (is_result<std::remove_cvref_t<Ret>>::value) {
        Ret r = std::invoke(*n.handler_, args...);
        if constexpr (std::is_void_v<R>) {
          if (r) return Outcome<R>::ok(0);
        } else {
          if (r) return Outcome<R>::ok(std::move(*r), 0);
        }
        stash_failure(n, std::move(r.error()));
        return Outcome<R>::nothing(kFailed);
      } else if constexpr (std::is_void_v<R>) {
        std::invoke(*n.handler_, args...);
        return Outcome<R>::ok(0);
      } else {
        return Outcome<R>::ok(std::invoke(*n.handler_, args...), 0);
      }
    } catch (...) {
      stash_exception(n, std::current_exception(), "handler");
    }
    return Outcome<R>::nothing(kFailed);
  }

  static std::uint8_t guard(NodeBase* nb, param_t<Args>... args) noexcept {
    Node& n = static_cast<Node&>(*nb);
    try {
      if constexpr (!std::is_same_v<G, no_guard>) {
        if (!static_cast<bool>(std::invoke(*n.guard_, args...))) return 0;
      }
      return !n.imposed_ || n.imposed_(args...) ? 1 : 0;
    } catch (...) {
      stash_exception(n, std::current_exception(), "guard");
    }
    return kFailed;
  }

  static void launch(NodeBase* nb, const std::shared_ptr<CoreBase>& core, param_t<Args>... args) noexcept {
    if constexpr ((std::is_copy_constructible_v<std::decay_t<Args>> && ...)) {
      try {
        nb->add_ref();
        WorkerPool::Task task = [ref = NodeRef(nb), core,
                                 copies = std::tuple<std::decay_t<Args>...>(args...)]() mutable noexcept {
          run_async(ref.get(), *core, copies);
        };
        if (!WorkerPool::default_pool().submit(std::move(task)))
          core->async_failures.fetch_add(1, std::memory_order_relaxed);
      } catch (...) {  // copying the arguments threw, or out of memory
        core->async_failures.fetch_add(1, std::memory_order_relaxed);
      }
    } else {
      (void)nb;  // bind refuses async handlers for non-copyable arguments
      ((void)args, ...);
      core->async_failures.fetch_add(1, std::memory_order_relaxed);
    }
  }

  bool has_guard() const noexcept { return !std::is_same_v<G, no_guard> || static_cast<bool>(imposed_); }

 protected:
  void destroy_state() noexcept override {
    handler_.reset();
    guard_.reset();
    imposed_ = nullptr;
  }

 private:
  // One async invocation, on a pool thread. `running` + `live` (seq_cst, Dekker-style against
  // retire's orphan/running checks) make sure the state is not destroyed under us and that no
  // invocation starts once unbind has made its decision.
  template <class Tuple>
  static void run_async(NodeBase* nb, CoreBase& core, Tuple& copies) noexcept {
    nb->running.fetch_add(1, std::memory_order_seq_cst);
    if (nb->live.load(std::memory_order_seq_cst)) {
      ++tls_async_depth;
      const Outcome<R> o = std::apply([nb](auto&... a) { return call(nb, a...); }, copies);
      --tls_async_depth;
      if (o.status & kFailed) {
        (void)take_failure();
        core.async_failures.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (nb->running.fetch_sub(1, std::memory_order_seq_cst) == 1 && nb->orphan.load(std::memory_order_seq_cst))
      nb->destroy_state_once();
  }

  std::optional<H> handler_;
  std::optional<G> guard_;
  Imposed imposed_;
};

}  // namespace detail

template <class Sig, class Combiner = typename detail::signature<Sig>::default_combiner>
class Event;

// ---- Binding ------------------------------------------------------------------------------------

// The right to keep a handler bound. Move-only; the destructor unbinds. A Binding is not itself
// synchronised: use one Binding object from one thread at a time (different Bindings, and the
// event, may be used concurrently). It may outlive its Event (unbind is then a no-op).
class Binding {
 public:
  Binding() noexcept = default;
  Binding(Binding&& o) noexcept : core_(std::move(o.core_)), node_(std::exchange(o.node_, nullptr)) {}
  Binding& operator=(Binding&& o) noexcept {
    if (this != &o) {
      unbind();
      core_ = std::move(o.core_);
      node_ = std::exchange(o.node_, nullptr);
    }
    return *this;
  }
  ~Binding() { unbind(); }

  // Unbinds (idempotent). See the unbind guarantee at the top of this file for what holds when it
  // returns, and for the exception when called from inside a raise or an async handler.
  void unbind() noexcept;

  // True while the handler is bound: false after unbind(), Event::unbind_domain() or the event's
  // destruction.
  [[nodiscard]] bool bound() const noexcept {
    return node_ != nullptr && node_->live.load(std::memory_order_acquire);
  }

  // The name used in failure reports.
  [[nodiscard]] const std::string& label() const noexcept;

 private:
  template <class, class>
  friend class Event;
  Binding(std::shared_ptr<detail::CoreBase> core, detail::NodeBase* node) noexcept
      : core_(std::move(core)), node_(node) {}

  std::shared_ptr<detail::CoreBase> core_;
  detail::NodeBase* node_ = nullptr;  // holds one reference
};

// ---- Event --------------------------------------------------------------------------------------

template <class R, class... Args, class Combiner>
class Event<R(Args...), Combiner> {
  static_assert(!std::is_reference_v<R>, "an event returns values, not references");
  static_assert(std::is_default_constructible_v<Combiner>, "a combiner must be default-constructible");
  static_assert(!std::is_void_v<typename Combiner::result_type>,
                "a combiner's result_type must be a value type (combine::none uses std::monostate)");

  using E = detail::Entry<R, Args...>;
  using T = detail::Table<E>;
  using Core = detail::EventCore<R, Args...>;
  template <class H, class G>
  using NodeFor = detail::Node<H, G, R, Args...>;

 public:
  using result_type = typename Combiner::result_type;
  using Authorizer = std::function<Authorization<Args...>(const Binder&, const BindOptions&)>;

  // `authorizer` decides every bind (empty: allow all). It is called on the binding thread,
  // possibly concurrently, and must be thread-safe; if it throws, the bind is refused.
  Event(std::string name, std::string owner, Authorizer authorizer = {})
      : core_(std::make_shared<Core>(std::move(name), std::move(owner), &table_)),
        authorizer_(std::move(authorizer)) {}

  // Unbinds everything (waiting as unbind does; deferring when destroyed inside a raise of another
  // event or inside an async handler). Bindings that outlive the event become unbound.
  ~Event() { core_->close(); }

  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // The default (primary) handler: runs when no bound handler's guard accepted the arguments (a
  // handler that ran and failed did accept them). Its result is combined like any other; it is
  // reported as "<default>" in failures. Replacing it waits for raises using the old one, like
  // unbind.
  template <class H>
  void set_default(H handler) {
    static_assert(std::is_invocable_v<H&, detail::param_t<Args>&...>,
                  "the default handler must be callable with the event's arguments");
    check_return<H>();
    auto* n = new NodeFor<H, no_guard>(std::move(handler), no_guard{}, {});
    n->label = "<default>";
    n->binder = core_->owner();
    n->event = core_->name();
    n->entry = E{&NodeFor<H, no_guard>::call, nullptr, nullptr, n};
    core_->set_default(n);
  }
  void clear_default() { core_->set_default(nullptr); }

  // Binds `handler` (with optional `guard`) for `who`. Errors:
  //   violation  the authorizer refused (detail: its reason; plugin: who.name; function: event name)
  //   misuse     duplicate name, unknown before/after name, impossible before+after, a null handler,
  //              async with non-copyable arguments, or the event is being destroyed
  //   limit      out of memory
  // The handler is callable with the arguments as lvalues; it returns R, Result<R> or Handled<R>.
  // The guard is callable with the arguments and returns something convertible to bool; it must be
  // cheap and free of side effects (it runs on the raising thread, for async handlers too).
  template <class H, class G = no_guard>
  Result<Binding> bind(const Binder& who, H handler, G guard = {}, BindOptions opts = {}) {
    static_assert(std::is_invocable_v<H&, detail::param_t<Args>&...>,
                  "the handler must be callable with the event's arguments");
    check_return<H>();
    if constexpr (!std::is_same_v<G, no_guard>) {
      static_assert(std::is_invocable_v<G&, detail::param_t<Args>&...>,
                    "the guard must be callable with the event's arguments");
      static_assert(std::is_constructible_v<bool, std::invoke_result_t<G&, detail::param_t<Args>&...>>,
                    "the guard must return something convertible to bool");
    }
    if (is_null(handler)) return refuse(who, Errc::misuse, "null handler");
    if constexpr (!std::is_same_v<G, no_guard>) {
      if (is_null(guard)) return refuse(who, Errc::misuse, "null guard");
    }

    Authorization<Args...> auth;
    if (authorizer_) {
      try {
        auth = authorizer_(who, opts);
      } catch (const std::exception& e) {
        return refuse(who, Errc::violation, std::string("authorizer threw: ") + e.what());
      } catch (...) {
        return refuse(who, Errc::violation, "authorizer threw");
      }
      if (!auth.allowed)
        return refuse(who, Errc::violation,
                      auth.reason.empty() ? "refused by " + core_->owner() : std::move(auth.reason));
    }
    if (opts.async && !(std::is_copy_constructible_v<std::decay_t<Args>> && ...))
      return refuse(who, Errc::misuse, "async handlers need copyable arguments");

    using N = NodeFor<H, G>;
    N* n = nullptr;
    try {
      n = new N(std::move(handler), std::move(guard), std::move(auth.imposed_guard));
      n->name = opts.name;
      n->binder = who.name;
      n->domain = who.domain;
      n->event = core_->name();
      n->async = opts.async;
      n->label = !opts.name.empty() ? opts.name
                 : !who.name.empty() ? who.name
                                     : "binding#" + std::to_string(next_id_.fetch_add(1, std::memory_order_relaxed));
    } catch (const std::bad_alloc&) {
      dispose(n);
      return refuse(who, Errc::limit, "out of memory");
    } catch (...) {
      dispose(n);
      return refuse(who, Errc::misuse, "copying the handler or guard threw");
    }
    n->entry = E{&N::call, n->has_guard() ? &N::guard : nullptr, opts.async ? &N::launch : nullptr, n};
    // The Binding's reference, taken before the node is published: from then on another thread
    // (unbind_domain) may unlink it and drop the event's reference at any moment.
    n->add_ref();
    Result<void> linked;
    try {
      linked = core_->insert(n, opts);
    } catch (const std::bad_alloc&) {
      linked = fail(Errc::limit, "out of memory");
    }
    if (!linked) {
      n->release();  // the Binding's, never handed out
      dispose(n);
      Error e = std::move(linked.error());
      e.plugin = who.name;
      e.function = core_->name();
      return std::unexpected(std::move(e));
    }
    return Binding(core_, n);
  }

  // bind(who, handler, opts) without a guard.
  template <class H>
  Result<Binding> bind(const Binder& who, H handler, BindOptions opts) {
    return bind<H, no_guard>(who, std::move(handler), no_guard{}, std::move(opts));
  }

  // Calls every accepting handler in order (see the file comment). Lock-free and allocation-free
  // unless a handler fails or an async handler is launched.
  // Always inlined: it is small (the general case is the out-of-line run()), and inlining lets the
  // 48-byte Raised live in registers at the call site instead of making a round trip through
  // memory, which alone doubles the cost of a one-handler raise. g++'s own heuristics flip on
  // unrelated changes, hence the attribute.
  [[gnu::always_inline]] Raised<result_type> raise(Args... args) {
    const detail::RaiseFrame frame(core_.get());
    if (frame.depth() > nest_fast_.load(std::memory_order_relaxed)) [[unlikely]] {
      if (std::optional<Raised<result_type>> no = too_deep(frame)) {
        // Rebuilt field by field: see the end of this function.
        return Raised<result_type>{std::move(no->value), no->ran, std::move(no->failed)};
      }
    }
    detail::rcu::ReadGuard section;
    const T* t = table_.load(detail::rcu::kLoad);
    const std::uint8_t shape = t->shape;
    if (shape == T::kSingle) [[likely]] {
      // One synchronous unguarded handler: call it, combine, done. Nothing here touches memory
      // other than the table, the reader word and the handler itself.
      const E& e = t->entries()[0];
      return single(e.call(e.node, args...));
    }
    if (shape == T::kSingleGuarded) {
      // The same with one guard. A separate block rather than a conditional guard call inside
      // the one above: that costs the unguarded case a cycle (measured).
      const E& e = t->entries()[0];
      const std::uint8_t accepted = e.guard(e.node, args...);
      if (accepted == 1) [[likely]]
        return single(e.call(e.node, args...));
      Raised<result_type> refused = single_refused(t, accepted, args...);  // refused, or threw
      return Raised<result_type>{std::move(refused.value), refused.ran, std::move(refused.failed)};
    }
    // Rebuilt field by field, not returned as is: with NRVO the out-of-line run() would write the
    // caller's result object through a pointer, forcing it into memory on the fast path too.
    Raised<result_type> slow = run(t, args...);
    return Raised<result_type>{std::move(slow.value), slow.ran, std::move(slow.failed)};
  }
  Raised<result_type> operator()(Args... args) { return raise(std::forward<Args>(args)...); }

  // The bounds on nested raises (see NestingLimits; the defaults until set). May be changed at any
  // time, concurrently with raises: a raise already past its check is not affected.
  void set_nesting_limits(NestingLimits lim) noexcept {
    lim.any_event = std::min<unsigned>(lim.any_event, detail::kMaxNesting);
    nest_same_.store(lim.same_event, std::memory_order_relaxed);
    nest_any_.store(lim.any_event, std::memory_order_relaxed);
    nest_fast_.store(std::min(lim.same_event, lim.any_event), std::memory_order_relaxed);
  }
  [[nodiscard]] NestingLimits nesting_limits() const noexcept {
    return {nest_same_.load(std::memory_order_relaxed), nest_any_.load(std::memory_order_relaxed)};
  }

  // Unbinds every handler bound by `domain` (e.g. after the extension's domain crashed); returns
  // how many. Their Bindings become unbound. Waits like unbind.
  std::size_t unbind_domain(const void* domain) noexcept { return core_->unbind_domain(domain); }

  // Handlers currently bound (the default handler not included).
  std::size_t bound() const noexcept { return core_->bound(); }
  // Async invocations that failed (error, exception, or could not be queued).
  std::uint64_t async_failures() const noexcept { return core_->async_failures.load(std::memory_order_relaxed); }

  const std::string& name() const noexcept { return core_->name(); }
  const std::string& owner() const noexcept { return core_->owner(); }

 private:
  // What a handler may return: R, Result<R> or Handled<R>, where R may also be any type
  // convertible to R (a handler from a domain returning Result<int> for a bool event, say).
  template <class H>
  static constexpr void check_return() {
    using Ret = std::remove_cvref_t<std::invoke_result_t<H&, detail::param_t<Args>&...>>;
    if constexpr (detail::is_result<Ret>::value || detail::is_handled<Ret>::value) {
      using U = typename detail::carried<Ret>::type;
      if constexpr (std::is_void_v<R>)
        static_assert(std::is_void_v<U>, "a handler of a void event returns void, Result<void> or Handled<void>");
      else
        static_assert(std::is_convertible_v<U, R>, "a handler returns R, Result<R> or Handled<R> (or U convertible to R)");
    } else if constexpr (std::is_void_v<R>) {
      static_assert(std::is_void_v<Ret>, "a handler of a void event returns void, Result<void> or Handled<void>");
    } else {
      static_assert(std::is_convertible_v<Ret, R>, "a handler returns R, Result<R> or Handled<R> (or U convertible to R)");
    }
  }

  template <class F>
  static bool is_null(const F& f) noexcept {
    if constexpr (std::is_pointer_v<F> || std::is_member_pointer_v<F> || detail::is_std_function<F>::value)
      return !f;
    else
      return false;
  }

  static void dispose(detail::NodeBase* n) noexcept {
    if (n == nullptr) return;
    n->destroy_state_once();
    n->release();
  }

  Result<Binding> refuse(const Binder& who, Errc kind, std::string detail) const {
    auto e = fail(kind, std::move(detail));
    e.error().plugin = who.name;
    e.error().function = core_->name();
    return e;
  }

  // What a raise at `frame` returns when it is nested too deeply (no handler runs); nothing when
  // it is not (see NestingLimits).
  [[gnu::cold, gnu::noinline]] std::optional<Raised<result_type>> too_deep(const detail::RaiseFrame& frame) const {
    std::optional<HandlerFailure<>> why = detail::nesting_refusal(frame, nesting_limits(), core_->name(), core_->owner());
    if (!why) return std::nullopt;
    Combiner comb;
    detail::Failures failed;
    failed.push_back(std::move(*why));
    return Raised<result_type>{std::move(comb).finish(), 0, std::move(failed)};
  }

  // The result of a raise whose only handler ran and returned `o`.
  [[gnu::always_inline]] static Raised<result_type> single(detail::Outcome<R>&& o) {
    if (o.status == detail::kHasValue) [[likely]] {
      Combiner comb;
      feed(comb, std::move(o));
      return Raised<result_type>{std::move(comb).finish(), 1, {}};
    }
    // No value, failed, or stop. Rebuilt field by field: see the end of raise().
    Raised<result_type> other = single_other(std::move(o));
    return Raised<result_type>{std::move(other.value), other.ran, std::move(other.failed)};
  }

  [[gnu::cold, gnu::noinline]] static Raised<result_type> single_other(detail::Outcome<R> o) {
    Combiner comb;
    const std::uint8_t status = o.status;
    feed(comb, std::move(o));
    detail::Failures failed;
    if (status & detail::kFailed) detail::note_failure(failed);
    return Raised<result_type>{std::move(comb).finish(), 1, std::move(failed)};
  }

  // The only handler's guard refused (guard == 0) or threw (guard == kFailed): the default
  // handler's turn.
  [[gnu::cold, gnu::noinline]] static Raised<result_type> single_refused(const T* t, std::uint8_t guard,
                                                                         detail::param_t<Args>... args) {
    Combiner comb;
    detail::Failures failed;
    if (guard == detail::kFailed) detail::note_failure(failed);
    std::size_t ran = 0;
    if (t->has_default) {
      const E& d = t->entries()[t->n];
      ran = 1;
      detail::Outcome<R> o = d.call(d.node, args...);
      const std::uint8_t status = o.status;
      feed(comb, std::move(o));
      if (status & detail::kFailed) detail::note_failure(failed);
    }
    return Raised<result_type>{std::move(comb).finish(), ran, std::move(failed)};
  }

  static void feed(Combiner& comb, detail::Outcome<R>&& o) {
    if (o.status & detail::kHasValue) {
      if constexpr (std::is_void_v<R>)
        comb.add();
      else
        comb.add(o.get());
    }
  }

  // The general path: guards, async entries, stop, unbound-during-this-raise, the default.
  // Out of line (raise() stays small at every call site); written so that the loop's state
  // (cursor, end, combiner, count) stays in callee-saved registers across the handler calls.
  [[gnu::noinline]] Raised<result_type> run(const T* t, detail::param_t<Args>... args) {
    Combiner comb;
    detail::Failures failed;
    std::size_t ran = 0;
    bool launched = false;
    const E* e = t->entries();
    const E* const end = e + t->n;
    for (; e != end; ++e) {
      // Unbound by an earlier handler of this very raise: skip it.
      if (!e->node->live.load(std::memory_order_relaxed)) [[unlikely]]
        continue;
      if (e->guard != nullptr) {
        const std::uint8_t g = e->guard(e->node, args...);
        if (g != 1) {
          if (g == detail::kFailed) [[unlikely]]
            detail::note_failure(failed);
          continue;
        }
      }
      if (e->launch != nullptr) [[unlikely]] {
        launch(*e, args...);
        launched = true;
        continue;
      }
      ++ran;
      detail::Outcome<R> o = e->call(e->node, args...);
      const std::uint8_t status = o.status;
      feed(comb, std::move(o));
      if (status & (detail::kFailed | detail::kStop)) [[unlikely]] {
        if (status & detail::kFailed) detail::note_failure(failed);
        if (status & detail::kStop) return Raised<result_type>{std::move(comb).finish(), ran, std::move(failed)};
      }
    }
    // No guard accepted (a handler that ran and failed did accept): the default handler, if any,
    // sits right after the bound entries.
    if (ran == 0 && !launched && t->has_default) {
      ++ran;
      detail::Outcome<R> o = end->call(end->node, args...);
      const std::uint8_t status = o.status;
      feed(comb, std::move(o));
      if (status & detail::kFailed) [[unlikely]]
        detail::note_failure(failed);
    }
    return Raised<result_type>{std::move(comb).finish(), ran, std::move(failed)};
  }

  [[gnu::noinline]] void launch(const E& e, detail::param_t<Args>... args) noexcept {
    e.launch(e.node, core_, args...);
  }

  // Declared before core_: the core publishes into it from its constructor.
  std::atomic<const T*> table_{nullptr};
  std::shared_ptr<Core> core_;
  Authorizer authorizer_;
  std::atomic<std::uint64_t> next_id_{1};
  // NestingLimits, and the smaller of the two: a raise no deeper than that needs no further look.
  std::atomic<std::uint32_t> nest_same_{NestingLimits{}.same_event};
  std::atomic<std::uint32_t> nest_any_{NestingLimits{}.any_event};
  std::atomic<std::uint32_t> nest_fast_{std::min(NestingLimits{}.same_event, NestingLimits{}.any_event)};
};

}  // namespace ward
