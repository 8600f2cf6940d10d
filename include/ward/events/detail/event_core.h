// The event core: the type-erased machinery behind Event<R(Args...)> and Binding. A detail of
// event.h; nothing here is API.
//
//  - A bound handler lives in a node (NodeBase, TypedNode, Node<H, G, R, Args...>) together with
//    its three trampolines (call, guard, launch): raw function pointers instantiated for the
//    handler's exact type. An Entry is what a raise sees of a node.
//  - A Table holds the entries in raise order, then the default handler's. It is immutable once
//    published; raises load it through one atomic pointer inside an rcu::ReadGuard.
//  - EventCore keeps the list of bound nodes and publishes a new Table on every change.
//
// Ownership: a node is reference-counted (by its event's list while linked, by its Binding, by
// each queued async invocation); the last release deletes it. The handler object inside is
// destroyed earlier, exactly once, when the unbind guarantee (event.h) allows. The core itself is
// shared (shared_ptr) by the Event, its Bindings and async tasks, so it outlives the Event while
// any of them remains.
// Locking: writers (insert, unbind, set_default, unbind_domain, close) serialise on the core's
// mutex and retire what they unpublish after an RCU grace period (retire*, src/events/event.cc);
// the raise path takes no lock. A handler's failure travels out of band, through a per-thread
// stash (stash_failure / take_failure).
#pragma once

#include <atomic>
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
#include <vector>

#include "ward/core/error.h"
#include "ward/events/detail/raise_stack.h"
#include "ward/events/detail/rcu.h"
#include "ward/events/vocabulary.h"
#include "ward/events/worker_pool.h"

namespace ward::detail {

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

  // Unlinks `n` (if still linked) and retires it; see the unbind guarantee in event.h.
  virtual void unbind(NodeBase* n) noexcept = 0;

  const std::string& name() const noexcept { return name_; }
  const std::string& owner() const noexcept { return owner_; }
  std::atomic<std::uint64_t> async_failures{0};

 private:
  const std::string name_, owner_;
};

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


}  // namespace ward::detail
