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
// and opaque pointers (ward::opaque, iface/opaque.h) those calls produce, so the ones the host
// holds keep working. Those produced by calls that are not replayed are refused after a restart
// (misuse: "from an instance that has since been restarted"). Then the failed call is sent again
// if that is safe (it never reached the failed instance, or the interface marks it
// ward::idempotent); otherwise only that caller gets the error. Host callbacks (iface/callback.h)
// the failed attempt already ran are answered from its record instead of running again, while
// the retry repeats them; likewise a replayed call's (iface/callback_journal.h). Host services
// are called again.
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
// Where it lives: this header holds what depends on the interface (typed calls, ext-handle
// translation, recording state-setting calls, loading a typed instance); the state machine and
// the heartbeat are the non-template detail::RecoveryCore (detail/recovery_core.h,
// src/recovery/recovery_core.cc); the log and the ext-handle map are replay_log.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "ward/iface/instance.h"
#include "ward/recovery/detail/recovery_core.h"
#include "ward/recovery/notice.h"
#include "ward/recovery/replay_log.h"
#include "ward/recovery/restart_policy.h"

namespace ward {

// The longest a call to an extension supervised under `rp` with policy `p` can take, whatever
// the extension does: 2 x timeout + recovery_timeout + load_timeout (see the file comment).
[[nodiscard]] inline std::chrono::nanoseconds worst_case_wait(const Policy& p, const RestartPolicy& rp) {
  return 2 * p.timeout() + rp.recovery_timeout + p.load_timeout();
}

template <class Api>
class Extension {
 public:
  using Stats = detail::RecoveryCore::Stats;

  Extension(std::string path, std::string entry, Policy policy, RestartPolicy rp, std::string name, NoticeSink sink,
            Starter backend = nullptr)
      : core_(launcher(std::move(path), std::move(entry), policy, backend), policy.timeout(), rp, std::move(name),
              std::move(sink)) {}
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

  static detail::RecoveryCore::Launch launcher(std::string path, std::string entry, Policy policy, Starter backend) {
    return [path = std::move(path), entry = std::move(entry), policy = std::move(policy),
            backend](const std::string& name, std::uint64_t arena_at) -> Result<std::shared_ptr<detail::LiveInstance>> {
      Spec spec;
      spec.plugin = path;
      spec.entry = entry;
      spec.policy = policy;
      spec.name = name;
      spec.backend = backend;
      spec.arena_at = arena_at;
      return std::make_shared<Typed>(WARD_TRY(Instance<Api>::load(std::move(spec))));
    };
  }

  // One call: admitted by the core (ext handles translated to the current instance's values),
  // sent, and on failure handed back to the core, which recovers and says whether to send again.
  // An ext handle the extension returns reaches the host as a token of the instance's
  // OpaqueTable, like an opaque pointer (replay_log.h: one mechanism for both).
  template <class F, auto M, class Args, std::size_t... I>
  auto call_with_recovery(Args& args, std::index_sequence<I...> idx)
      -> decltype(std::declval<Instance<Api>&>().template call<M>(std::get<I>(args)...)) {
    using R = decltype(std::declval<Instance<Api>&>().template call<M>(std::get<I>(args)...));
    detail::RecoveryCore::CallState state;
    // What the call's callbacks delivered, across its attempts: a retry answers the ones an
    // earlier attempt delivered from it (iface/callback_journal.h). Only calls that may run again
    // keep one; the others still install a journal, so their callbacks stay out of an enclosing
    // call's record.
    detail::CallbackRecord seen;
    detail::CallbackJournal journal(F::is_idempotent || F::replays ? &seen : nullptr);
    detail::CallbackJournal::Scope in_journal(journal);
    std::optional<detail::SandboxPlaces<Args>> sandboxed;  // taken at the first failure
    for (;;) {
      Args real = args;  // ext handles translated; `args` keeps the host's values for the log
      if (sandboxed) detail::rebase_sandbox(real, *sandboxed, idx);
      auto t = core_.admit(state, [&](const OpaqueTable& tokens) {
        return detail::translate_ext_handles<F>(real, tokens, idx);
      });
      if (!t) return R(std::unexpected(t.error()));
      journal.begin(t->instance->domain());
      R r = instance_of(*t->instance).template call<M>(std::get<I>(real)...);
      core_.callbacks_settled(journal.end(r.has_value()), name_of<F>());
      if (r) {
        if constexpr (detail::result_kind<F>() == detail::ResultKind::deep) {
          // [deep] An object is bound to the instance that returned it, which a restart replaces:
          // its Deep keeps the data but is not callable through a Supervisor (object.h).
          detail::DeepValue v = r->unverified_value_i_trust_it().value();
          v.domain = nullptr;
          v.table = 0;
          r = R(typename R::value_type(Deep<detail::pointee_t<typename F::ret>>(std::move(v))));
        }
        std::uint64_t produced = 0;  // the token the host holds for the result
        if constexpr (F::returns_ext) {
          auto token = t->instance->domain().opaques().token_for(
              static_cast<std::uint64_t>(r->unverified_value_i_trust_it()), detail::ext_handle_type);
          if (!token) return R(std::unexpected(token.error()));
          produced = *token;
          r = R(typename R::value_type(static_cast<typename F::ret>(produced)));
        } else if constexpr (F::returns_opq) {
          produced = r->token();
        }
        if constexpr (F::replays) record<F>(args, produced, std::move(seen), idx);
        return r;
      }
      if (!sandboxed) sandboxed = detail::sandbox_places(args, idx);
      auto next = core_.after_failure(state, *t, r.error(), F::is_idempotent);
      if (!next) return R(std::unexpected(next.error()));
      if (*next == detail::RecoveryCore::Next::give_error) return r;
    }
  }

  // "device_api::write", for notices.
  template <class F>
  static const char* name_of() {
    return std::get<detail::index_of_fn<Api, F::member>()>(interface_traits<Api>::fns).name;
  }

  // Logs a completed state-setting call with deep copies of its arguments, as a closure that
  // sends it again to a fresh instance. What the call produced for the host (its result's token,
  // `produced`, and the tokens its out_opaque parameters received) is installed under the same
  // tokens in the fresh instance's table. Its callbacks were delivered when it ran: each replay
  // is matched against what they delivered (`seen`, iface/callback_journal.h), which then
  // follows what the host saw.
  template <class F, class Args, std::size_t... I>
  void record(const Args& args, std::uint64_t produced, detail::CallbackRecord seen, std::index_sequence<I...> idx) {
    // Strings and in-buffers by value, out-buffers as scratch space of the same size, service
    // tables by pointer (the host's tables outlive the extension): the codec's capture.
    auto captured = std::make_shared<detail::held_args<F>>(detail::capture_args<F>(args));
    const auto outs = detail::out_tokens<F>(args, idx);
    auto callbacks = std::make_shared<detail::CallbackRecord>(std::move(seen));
    auto replay = [captured, produced, outs, callbacks, core = &core_](detail::LiveInstance& inst) -> Result<void> {
      OpaqueTable& tokens = inst.domain().opaques();
      typename F::args a = detail::args_from<F>(*captured);
      WARD_TRY(detail::translate_ext_handles<F>(a, tokens, std::index_sequence<I...>{}));
      detail::CallbackJournal journal(callbacks.get());
      detail::CallbackJournal::Scope in_journal(journal);
      journal.begin(inst.domain());
      auto r = instance_of(inst).template call<F::member>(std::get<I>(a)...);
      core->callbacks_settled(journal.end(r.has_value()), name_of<F>());
      if (!r) return std::unexpected(r.error());
      if constexpr (F::returns_ext) {
        const auto real = static_cast<std::uint64_t>(r->unverified_value_i_trust_it());
        tokens.adopt(WARD_TRY(tokens.token_for(real, detail::ext_handle_type)), produced);
      } else if constexpr (F::returns_opq) {
        tokens.adopt(r->token(), produced);
      }
      const auto fresh = detail::out_tokens<F>(a, std::index_sequence<I...>{});
      for (std::size_t i = 0; i < fresh.size(); ++i) tokens.adopt(fresh[i], outs[i]);
      return {};
    };
    core_.record({static_cast<std::uint32_t>(detail::index_of_fn<Api, F::member>()), std::move(replay)},
                 F::replays_latest_only);
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
