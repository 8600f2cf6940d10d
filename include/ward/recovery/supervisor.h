// Supervisor and Extension<Api>: failure detection, release, restart and replay (Nooks' recovery
// manager, made transparent the way shadow drivers did it).
//
//   ward::Supervisor sup({.max_restarts = 5, .window = 10s});
//   auto dev = sup.load<device_api>("libdevice.so", "device_entry", policy);
//   auto n = (*dev)->call<&device_api::read>(block, buf, size);   // same API as Instance<Api>
//
// When a call finds the extension failed (crashed, exited, hung, violated policy, exhausted a
// limit) the supervisor, once for all threads: records the first cause; releases every host
// object the extension held (its handle table, each release hook once); drops the domain and its
// arena; starts a fresh domain (after an exponential backoff); replays, in order and with their
// original arguments, the calls the interface marks ward::replay_after_restart (init, configure,
// open, ...) — the shadow driver's log — and re-maps the extension handles (ward::ext_handle)
// and opaque pointers (ward::opaque, iface/opaque.h) those calls produce, and the descriptors
// whose functions the host calls (ward::returns_deep, ward::Object, iface/object.h), so the ones
// the host holds keep working. Those produced by calls that are not replayed are refused after a restart
// (misuse: "from an instance that has since been restarted"). Then the failed call is sent again
// if that is safe (it never reached the failed instance, or the interface marks it
// ward::idempotent); otherwise only that caller gets the error. Host callbacks (iface/callback.h)
// the failed attempt already ran are answered from its record instead of running again, while
// the retry repeats them; likewise a replayed call's (iface/callback_journal.h). Host services
// are called again.
//
// Checkpoints (RestartPolicy::checkpoint, checkpoint.h): an extension declared checkpointable
// has its state copied while idle (checkpoint(), or every N logged calls); a recovery then
// restores the copy and replays only the calls logged after it.
//
// Restart policy (RestartPolicy, restart_policy.h). Recovery gives up, and the extension is
// *disabled* (calls fail fast until reset()), when any of these holds:
//  - Too many restarts in a *streak*: the restarts since the extension last ran healthily, that
//    is, since an instance stayed up for a whole `window` without failing. A failure that comes
//    sooner adds to the streak however slowly it comes: failing every window / max_restarts + 1 ms
//    is still a crash loop. A restart attempt that fails (start or replay) counts as a restart, so
//    one failure gets at most max_restarts attempts, and a streak that already holds max_restarts
//    restarts disables at its next failure.
//  - Its recovery ran out of time: one failure's recovery, all its attempts and backoffs, has
//    `recovery_timeout` from the moment the failure was found. A replay still running at that
//    deadline is cut off (the fresh instance is killed). Starting an instance is bounded by the
//    Policy's load_timeout, so a recovery ends, instance up or extension disabled, at most
//    recovery_timeout + load_timeout after the failure was found.
//  - The plugin cannot be started again at all (load_failed, misuse: file gone, bad setup).
//
// What a caller waits for, at most (T = the Policy's call timeout, L = its load_timeout,
// R = recovery_timeout; worst_case_wait() computes the total):
//  - each send to the extension: T (Policy::Builder::timeout says what it counts);
//  - one recovery per call, never more. If the caller's own thread found the failure, it runs
//    the recovery: at most R + L. A call that finds another thread recovering waits for the
//    attempt under way for at most T (and never past the recovery's end), one that arrives during
//    a backoff does not wait; either gets an error with `earlier` set (it never reached the
//    extension) unless that attempt brought a fresh instance up;
//  - one more send after the recovery, if that is safe (see above). A call that fails again
//    after its recovery returns that error; the next call (or the heartbeat) recovers.
//  Whatever the extension does, no call takes longer than 2T + R + L (process start and teardown
//  on a loaded machine aside).
//
// Threads: any number of host threads may call. Recovery runs on the thread that found the
// failure, without holding the supervisor's lock while an instance starts, replays or backs off.
// The notice sink (RecoveryNotice, notice.h) and the release hooks of the failed instance's host
// objects run on that thread, outside the supervisor's locks; a call into the same extension from
// them, or from a host service during replay, fails at once with `misuse` (it would wait for its
// own recovery). An optional heartbeat thread per extension asks an idle instance to answer
// within heartbeat_timeout and recovers it, on that thread, if it does not.
//
// Where it lives: this header holds what depends on the interface (typed calls, loading a typed
// instance); the loop one call runs (admission, ext-handle translation, retry, recording
// state-setting calls), for the interface's functions and for descriptor objects alike, is
// detail/supervised_call.h; the state machine and
// the heartbeat are the non-template detail::RecoveryCore (detail/recovery_core.h,
// src/recovery/recovery_core.cc); the log and the ext-handle map are replay_log.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "ward/iface/instance.h"
#include "ward/recovery/detail/recovery_core.h"
#include "ward/recovery/detail/supervised_call.h"
#include "ward/recovery/notice.h"
#include "ward/recovery/replay_log.h"
#include "ward/recovery/restart_policy.h"

namespace ward {

// The longest a call to an extension supervised under `rp` with policy `p` can take, whatever
// the extension does: 2 x timeout + recovery_timeout + load_timeout (see the file comment), and
// 2 x timeout more when checkpoints are on (a call held back while one drains and copies).
[[nodiscard]] inline std::chrono::nanoseconds worst_case_wait(const Policy& p, const RestartPolicy& rp) {
  return (rp.checkpoint.heap_bytes != 0 ? 4 : 2) * p.timeout() + rp.recovery_timeout + p.load_timeout();
}

template <class Api>
class Extension {
 public:
  using Stats = detail::RecoveryCore::Stats;

  Extension(std::string path, std::string entry, Policy policy, RestartPolicy rp, std::string name, NoticeSink sink,
            Starter backend = nullptr)
      : core_(launcher(std::move(path), std::move(entry), policy, backend, rp.checkpoint.heap_bytes), policy.timeout(), rp,
              std::move(name), std::move(sink)) {}
  // The host must not destroy an extension while calls are in progress; a recovery the
  // heartbeat runs is waited for (it is bounded, see the file comment).
  ~Extension() = default;

  [[nodiscard]] Result<void> start() { return core_.start(); }

  // Same contract as Instance<Api>::call, plus recovery (see the file comment).
  template <auto M, class... A>
  [[nodiscard]] auto call(A&&... a) {
    using F = typename detail::declared_fn<Api, M, sizeof...(A)>::type;
    typename F::args args{std::forward<A>(a)...};
    return call_with_recovery<F, M>(args, std::make_index_sequence<F::arity>{});
  }

  // The same call, spelled like the direct one: `ext->write(block, data, size)`.
  [[nodiscard]] detail::arrow<proxy<Api, Extension>> operator->() { return {proxy<Api, Extension>(this)}; }

  [[nodiscard]] bool disabled() const { return core_.disabled(); }
  // Re-enables the extension: starts a fresh instance and replays the log, with a new streak and
  // a full recovery budget. Errors: misuse while a recovery is in progress; what the recovery
  // returns (the extension is disabled again if it gives up).
  [[nodiscard]] Result<void> reset() { return core_.reset(); }

  // Takes a checkpoint of the extension's state now, so the next recovery restores it and
  // replays only what is logged after it (recovery/checkpoint.h; errors: RecoveryCore::checkpoint).
  // Callers are held back meanwhile: at most the Policy's timeout to drain, then the copy.
  [[nodiscard]] Result<void> checkpoint() { return core_.checkpoint(); }

  // Counters since load (detail::RecoveryCore::Stats says what each counts).
  [[nodiscard]] Stats stats() const { return core_.stats(); }
  // The domain of the current instance. The reference is valid until the next restart: while
  // other threads may trigger one, hold current() instead, or use kill() below.
  [[nodiscard]] Domain& domain() { return core_.current()->domain(); }
  // Kills the current instance from outside (fault injection); the next call recovers.
  void kill() { core_.current()->domain().kill(); }
  [[nodiscard]] std::shared_ptr<Instance<Api>> current() const {
    std::shared_ptr<detail::LiveInstance> i = core_.current();
    Instance<Api>& p = instance_of(*i);
    return std::shared_ptr<Instance<Api>>(std::move(i), &p);
  }
  [[nodiscard]] const std::string& name() const { return core_.name(); }
  // `n` Ts of sandbox memory (iface/sandbox.h). The heap moves to every restarted instance with
  // its contents and addresses, so the handle, and pointers the extension stored, keep working.
  template <class T>
  [[nodiscard]] Result<Sandboxed<T>> alloc(std::size_t n = 1) {
    return sandbox_alloc<T>(core_.current()->domain(), n);
  }

 private:
  // An instance of this interface: the core sees its domain, the calls its Instance<Api>.
  struct Typed final : detail::LiveInstance {
    explicit Typed(Instance<Api> i) : instance(std::move(i)) {}
    Domain& domain() override { return instance.domain(); }
    Instance<Api> instance;
  };
  // Every instance the core holds was started by launcher() below.
  static Instance<Api>& instance_of(detail::LiveInstance& i) { return static_cast<Typed&>(i).instance; }

  static detail::RecoveryCore::Launch launcher(std::string path, std::string entry, Policy policy, Starter backend,
                                               std::uint64_t checkpoint_bytes) {
    return [path = std::move(path), entry = std::move(entry), policy = std::move(policy), backend,
            checkpoint_bytes](const std::string& name, std::uint64_t arena_at) -> Result<std::shared_ptr<detail::LiveInstance>> {
      Spec spec;
      spec.plugin = path;
      spec.entry = entry;
      spec.policy = policy;
      spec.name = name;
      spec.backend = backend;
      spec.arena_at = arena_at;
      spec.checkpoint_bytes = checkpoint_bytes;
      return std::make_shared<Typed>(WARD_TRY(Instance<Api>::load(std::move(spec))));
    };
  }

  // Sends function M of the interface to one instance (recovery/detail/supervised_call.h).
  template <auto M>
  struct FnSend {
    std::uint32_t fn;
    std::uint64_t scope;
    const char* name;
    bool loggable;
    bool present(detail::LiveInstance&) const { return true; }
    template <class Args>
    auto operator()(detail::LiveInstance& inst, Args& a) const {
      return std::apply([&](auto&... x) { return instance_of(inst).template call<M>(x...); }, a);
    }
  };

  // One call, through the supervised loop. An ext handle the extension returns reaches the host
  // as a token of the instance's OpaqueTable, like an opaque pointer (replay_log.h: one
  // mechanism for both); a descriptor, as a Deep callable through the Supervisor (object.h).
  template <class F, auto M, class Args, std::size_t... I>
  auto call_with_recovery(Args& args, std::index_sequence<I...> idx) {
    constexpr std::size_t index = detail::index_of_fn<Api, F::member>();
    const FnSend<M> send{static_cast<std::uint32_t>(index), 0, std::get<index>(interface_traits<Api>::fns).name, true};
    return detail::supervised_call<F>(core_, send, args, idx);
  }

  detail::RecoveryCore core_;
};

// Loads extensions under one restart policy and one notice sink.
class Supervisor {
 public:
  explicit Supervisor(RestartPolicy rp = {}, NoticeSink sink = {}) : rp_(rp), sink_(std::move(sink)) {}

  // Loads `path` on `backend` (null: the process backend); every restart uses the same backend.
  template <class Api>
  [[nodiscard]] Result<std::unique_ptr<Extension<Api>>> load(std::string path, std::string entry, Policy policy = Policy(),
                                                             std::string name = {}, Starter backend = nullptr) {
    auto ext = std::make_unique<Extension<Api>>(std::move(path), std::move(entry), std::move(policy), rp_, std::move(name),
                                                sink_, backend);
    WARD_TRY(ext->start());
    return ext;
  }
  // Loads the library of free functions `path` (a WARD_LIBRARY; see Instance::open).
  template <class Api>
  [[nodiscard]] Result<std::unique_ptr<Extension<Api>>> open(std::string path, Policy policy = Policy(),
                                                             std::string name = {}, Starter backend = nullptr) {
    static_assert(detail::is_library<Api>, "ward: Supervisor::open is for a WARD_LIBRARY; a table with an entry uses load");
    return load<Api>(std::move(path), {}, std::move(policy), std::move(name), backend);
  }

 private:
  RestartPolicy rp_;
  NoticeSink sink_;
};

}  // namespace ward
