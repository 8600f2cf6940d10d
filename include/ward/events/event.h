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
//    detail/rcu.h); writers pay for the ordering with membarrier(2).
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
//
// Where the rest is: the plain types the API speaks in (Binder, BindOptions, Handled,
// Authorization, Raised, NestingLimits) in vocabulary.h; the combiners in combine.h; the
// machinery in detail/ (event_core.h: handler nodes, tables, the shared core; rcu.h: the
// reclamation scheme; raise_stack.h: nesting bookkeeping). This file holds Binding and Event.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "ward/core/error.h"
#include "ward/events/combine.h"
#include "ward/events/detail/event_core.h"
#include "ward/events/detail/raise_stack.h"
#include "ward/events/detail/rcu.h"
#include "ward/events/vocabulary.h"

namespace ward {

namespace detail {

// An event's default combiner: the last value, or nothing for a void event.
template <class Sig>
struct signature;
template <class R, class... Args>
struct signature<R(Args...)> {
  using default_combiner = std::conditional_t<std::is_void_v<R>, combine::none, combine::last<R>>;
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
