// Supervisor and Extension<Api>: failure detection, release, restart and replay (Nooks' recovery
// manager, made transparent the way shadow drivers did it).
//
//   ward::Supervisor sup({.max_restarts = 5, .window = 10s});
//   auto dev = sup.load<device_api>("libdevice.so", "device_entry", policy);
//   auto n = (*dev)->call<&device_api::read>(block, buf, size);   // same API as Plugin<Api>
//
// When a call finds the extension failed (crashed, exited, hung, violated policy, exhausted a
// limit) the supervisor, once for all threads: records the first cause; releases every host
// object the extension held (its handle table, each release hook once); drops the domain and its
// arena; starts a fresh domain (after an exponential backoff); replays, in order and with their
// original arguments, the calls the interface marks ward::replay_after_restart (init, configure,
// open, ...) — the shadow driver's log — and re-maps the extension handles those calls return
// (ward::ext_handle), so handles the host holds keep working. Then the failed call is sent again
// if that is safe (it never reached the failed instance, or the interface marks it
// ward::idempotent); otherwise only that caller gets the error.
//
// Restart policy (RestartPolicy below). Recovery gives up, and the extension is *disabled* (calls
// fail fast until reset()), when any of these holds:
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
// Event hooks and the release hooks of the failed instance's host objects run on that thread,
// outside the supervisor's locks; a call into the same extension from them, or from a host
// service during replay, fails at once with `misuse` (it would wait for its own recovery).
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <optional>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "ward/iface/plugin.h"
#include "ward/core/handle_table.h"

namespace ward {

struct RestartPolicy {
  // At most this many restarts without `window` of healthy running in between (see above).
  unsigned max_restarts = 5;
  std::chrono::milliseconds window{std::chrono::seconds(10)};
  // Budget of one failure's recovery (every attempt and backoff), from detection; past it the
  // extension is disabled. Make it longer than the replay of the log takes.
  std::chrono::milliseconds recovery_timeout{std::chrono::seconds(10)};
  // Backoff before the 2nd and later restarts of a streak, doubling up to backoff_max; never
  // past the recovery's budget.
  std::chrono::milliseconds backoff_initial{0};
  std::chrono::milliseconds backoff_max{std::chrono::milliseconds(200)};
  std::chrono::milliseconds heartbeat{0};  // 0: no heartbeat
  std::chrono::milliseconds heartbeat_timeout{std::chrono::milliseconds(500)};
};

// The longest a call to an extension supervised under `rp` with policy `p` can take, whatever
// the extension does: 2 x timeout + recovery_timeout + load_timeout (see the file comment).
[[nodiscard]] inline std::chrono::nanoseconds worst_case_wait(const Policy& p, const RestartPolicy& rp) {
  return 2 * p.timeout() + rp.recovery_timeout + p.load_timeout();
}

enum class EventKind : std::uint8_t {
  failed,           // a failure was detected (cause)
  released,         // the failed instance's host objects were released (count)
  restarted,        // a fresh instance runs and its state was replayed (count = calls replayed)
  restart_failed,   // starting or replaying failed (cause); another attempt follows if allowed
  retried,          // an idempotent call was retried after recovery
  error_to_caller,  // a non-idempotent call failed; its caller got the error
  disabled,         // recovery gave up (cause says why): calls fail fast until reset()
  reset,            // the host re-enabled the extension
};
[[nodiscard]] std::string_view to_string(EventKind k) noexcept;

struct RecoveryEvent {
  EventKind kind;
  std::string extension;
  Error cause;                        // failed, restart_failed, error_to_caller, disabled
  std::size_t count = 0;              // released: objects; restarted: calls replayed
  std::chrono::nanoseconds elapsed{}; // restarted: from detection to the fresh instance ready
  unsigned restarts_in_streak = 0;    // restarts since the extension last ran healthily
};

using EventSink = std::function<void(const RecoveryEvent&)>;

// Extension-issued handles (a session id the plugin returns and later takes back) crossing a
// restart: the host sees stable virtual values; the supervisor maps them to the current
// instance's real values, re-learned when the call that created them is replayed.
template <class Api>
class Extension;

namespace detail {

// Kills a fresh instance whose replay is still running at its recovery's deadline (the bound on
// a recovery whose replayed calls each answer just under their timeout). Disarm before the
// domain goes.
class ReplayWatchdog {
 public:
  ReplayWatchdog(Domain& d, std::chrono::steady_clock::time_point deadline)
      : thread_([this, &d, deadline] {
          std::unique_lock<std::mutex> lk(mu_);
          if (cv_.wait_until(lk, deadline, [this] { return disarmed_; })) return;
          fired_ = true;
          lk.unlock();
          d.kill();
        }) {}
  ~ReplayWatchdog() { (void)disarm(); }
  ReplayWatchdog(const ReplayWatchdog&) = delete;
  ReplayWatchdog& operator=(const ReplayWatchdog&) = delete;
  // Stops the watchdog; true if it had killed the instance.
  bool disarm() {
    if (thread_.joinable()) {
      {
        std::lock_guard<std::mutex> g(mu_);
        disarmed_ = true;
      }
      cv_.notify_all();
      thread_.join();
    }
    return fired_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  bool fired_ = false;  // written by the thread, read after joining it
  std::thread thread_;  // last: starts once the members above exist
};

}  // namespace detail

template <class Api>
class Extension {
 public:
  using Clock = std::chrono::steady_clock;

  Extension(std::string path, std::string entry, Policy policy, RestartPolicy rp, std::string name, EventSink sink)
      : path_(std::move(path)), entry_(std::move(entry)), policy_(std::move(policy)), rp_(rp), name_(std::move(name)),
        sink_(std::move(sink)) {}
  // The host must not destroy an extension while calls are in progress; a recovery the
  // heartbeat runs is waited for (it is bounded, see the file comment).
  ~Extension() {
    {
      std::lock_guard<std::mutex> g(hb_mu_);
      hb_stop_ = true;
    }
    hb_cv_.notify_all();
    if (hb_.joinable()) hb_.join();
  }

  [[nodiscard]] Result<void> start() {
    auto p = Plugin<Api>::load(path_, entry_, policy_, name_);
    if (!p) return std::unexpected(p.error());
    if (name_.empty()) name_ = p->domain().name();
    current_ = std::make_shared<Plugin<Api>>(std::move(*p));
    ready_at_ = Clock::now();
    if (rp_.heartbeat.count() > 0) hb_ = std::thread([this] { heartbeat_loop(); });
    return {};
  }

  // Same contract as Plugin<Api>::call, plus recovery (see the file comment).
  template <auto M, class... A>
  [[nodiscard]] auto call(A&&... a) {
    using F = typename detail::declared_fn<Api, M, sizeof...(A)>::type;
    typename F::args args{std::forward<A>(a)...};
    return call_impl2<F, M>(args, std::make_index_sequence<F::arity>{});
  }

  [[nodiscard]] bool disabled() const {
    std::shared_lock g(mu_);
    return disabled_.has_value();
  }
  // Re-enables the extension: starts a fresh instance and replays the log, with a new streak and
  // a full recovery budget. Errors: misuse while a recovery is in progress; what the recovery
  // returns (the extension is disabled again if it gives up).
  [[nodiscard]] Result<void> reset() {
    std::unique_lock g(mu_);
    if (recovering_) return std::unexpected(named(Errc::misuse, "reset() while a recovery is in progress"));
    disabled_.reset();
    streak_ = 0;
    pending_.push_back({EventKind::reset, name_, {}, 0, {}, 0});
    const auto now = Clock::now();
    begin_recovery_locked();
    flush_events(g);
    return run_recovery(now);
  }

  struct Stats {
    // failures: of instances and of restart attempts; restarts: instances restarted and replayed.
    std::uint64_t failures = 0, restarts = 0, replayed = 0, retried = 0, errors_to_callers = 0, released = 0;
    std::size_t log_size = 0;
  };
  [[nodiscard]] Stats stats() const {
    std::shared_lock g(mu_);
    Stats s = stats_;
    s.log_size = log_.size();
    return s;
  }
  // The domain of the current instance. The reference is valid until the next restart: while
  // other threads may trigger one, hold current() instead, or use kill()/pid() below.
  [[nodiscard]] Domain& domain() {
    std::shared_lock g(mu_);
    return current_->domain();
  }
  // Kills the current instance from outside (fault injection); the next call recovers.
  void kill() { current()->domain().kill(); }
  [[nodiscard]] std::shared_ptr<Plugin<Api>> current() const {
    std::shared_lock g(mu_);
    return current_;
  }
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  using Xlat = std::map<std::uint64_t, std::uint64_t>;  // virtual ext handle -> current real value

  struct LogEntry {
    std::uint32_t fn;  // index in the interface, for replay_latest
    std::function<Result<void>(Plugin<Api>&, std::map<std::uint64_t, std::uint64_t>&)> replay;
  };

  // Replaces every ext_handle argument (a virtual value) by the current instance's real value.
  template <class F, class Args, std::size_t... I>
  static Result<void> translate(Args& args, const Xlat& x, std::index_sequence<I...>) {
    Result<void> ok{};
    (
        [&] {
          if constexpr (F::template is_ext_handle<I>) {
            auto& v = std::get<I>(args);
            auto it = x.find(static_cast<std::uint64_t>(v));
            if (it == x.end()) {
              if (ok)
                ok = fail(Errc::misuse, "unknown extension handle " + std::to_string(static_cast<std::uint64_t>(v)) +
                                            " for parameter " + std::to_string(I));
            } else {
              v = static_cast<std::remove_cvref_t<decltype(v)>>(it->second);
            }
          }
        }(),
        ...);
    return ok;
  }

  template <class F, auto M, class Args, std::size_t... I>
  auto call_impl2(Args& args, std::index_sequence<I...>)
      -> decltype(std::declval<Plugin<Api>&>().template call<M>(std::get<I>(args)...)) {
    using R = decltype(std::declval<Plugin<Api>&>().template call<M>(std::get<I>(args)...));
    // Set once this call has run or waited for a recovery: it never waits for a second one
    // (that is what bounds a caller's wait, see the file comment).
    bool recovered = false;
    for (int resends = 0, retried = 0;;) {
      std::shared_ptr<Plugin<Api>> p;
      std::uint64_t gen;
      Args real = args;  // ext handles translated; `args` keeps the host's values for the log
      {
        std::shared_lock g(mu_);
        if (recovering_) {
          if (recovered) return R(std::unexpected(recovering_error()));
          recovered = true;
          if (auto w = await_recovery(g); !w) return R(std::unexpected(w.error()));
        }
        if (disabled_) return R(std::unexpected(disabled_error()));
        p = current_;
        gen = gen_;
        if (auto t = translate<F>(real, xlat_, std::index_sequence<I...>{}); !t) return R(std::unexpected(t.error()));
      }
      R r = p->template call<M>(std::get<I>(real)...);
      if (r) {
        std::uint64_t virt = 0;
        if constexpr (F::returns_ext) {
          std::unique_lock g(mu_);
          virt = ++next_virtual_;
          xlat_[virt] = static_cast<std::uint64_t>(r->unverified_value_i_trust_it());
          r = R(typename R::value_type(static_cast<typename F::ret>(virt)));
        }
        if constexpr (F::replays) log_call<F>(args, virt, std::index_sequence<I...>{});
        return r;
      }
      // Failures of the host's own making leave the extension alive: nothing to recover.
      if (p->domain().alive()) return r;
      if (recovered) {
        emit_error_to_caller(r.error());
        return r;
      }
      auto rec = recover(gen, r.error());
      if (!rec) return R(std::unexpected(rec.error()));
      recovered = *rec;
      // A call that found the instance already failed never reached it: always safe to resend.
      if (r.error().earlier && resends++ < 8) {
        count_retry();
        continue;
      }
      if (F::is_idempotent && retried++ == 0) {
        count_retry();
        continue;
      }
      emit_error_to_caller(r.error());
      return r;
    }
  }

  template <class F, class Args, std::size_t... I>
  void log_call(const Args& args, std::uint64_t virt, std::index_sequence<I...>) {
    // A deep copy (codec.h, capture): strings and in-buffers by value, out-buffers as scratch
    // space of the same size, service tables by pointer (the host's tables outlive the extension).
    auto captured = std::make_shared<detail::held_args<F>>(detail::capture_args<F>(args));
    LogEntry e;
    e.fn = static_cast<std::uint32_t>(detail::index_of_fn<Api, F::member>());
    e.replay = [captured, virt](Plugin<Api>& p, Xlat& x) -> Result<void> {
      typename F::args a = detail::args_from<F>(*captured);
      if (auto t = translate<F>(a, x, std::index_sequence<I...>{}); !t) return t;
      auto r = p.template call<F::member>(std::get<I>(a)...);
      if (!r) return std::unexpected(r.error());
      if constexpr (F::returns_ext) x[virt] = static_cast<std::uint64_t>(r->unverified_value_i_trust_it());
      (void)virt;
      return {};
    };
    std::unique_lock g(mu_);
    if constexpr (F::replays_latest_only) {
      std::erase_if(log_, [&](const LogEntry& x) { return x.fn == e.fn; });
    }
    log_.push_back(std::move(e));
  }

  [[nodiscard]] Error named(Errc kind, std::string detail) const {
    Error e = fail(kind, std::move(detail)).error();
    e.plugin = name_;
    return e;
  }
  // The errors of calls that never reached the extension. Callers hold mu_.
  [[nodiscard]] Error disabled_error() const {
    Error e = *disabled_;
    e.earlier = true;
    return e;
  }
  [[nodiscard]] Error recovering_error() const {
    Error e = last_cause_;
    e.earlier = true;
    e.detail = "not called: recovery in progress after: " + last_cause_.detail;
    return e;
  }

  // A call that finds a recovery under way (mu_ held through `g`, shared or exclusive): waits
  // for the attempt in progress to end, at most one call timeout; none during a backoff. OK if
  // that attempt brought a fresh instance up.
  template <class Lock>
  Result<void> await_recovery(Lock& g) {
    if (recoverer_ == std::this_thread::get_id())
      return std::unexpected(named(Errc::misuse, "called from its own recovery (an event or release hook, or a host "
                                                 "service during replay): it cannot wait for itself"));
    if (!backing_off_) {
      const std::uint64_t epoch = epoch_;
      recovery_cv_.wait_until(g, Clock::now() + policy_.timeout(), [&] { return epoch_ != epoch; });
    }
    if (disabled_) return std::unexpected(disabled_error());
    if (recovering_) return std::unexpected(recovering_error());
    return {};
  }

  // Recovers from the failure seen on generation `gen`. Returns true if this thread ran or
  // waited for a recovery, false if the failure had already been recovered from.
  Result<bool> recover(std::uint64_t gen, const Error& cause) {
    std::unique_lock g(mu_);
    if (gen != gen_) return false;
    if (disabled_) return std::unexpected(disabled_error());
    if (recovering_) {
      if (auto w = await_recovery(g); !w) return std::unexpected(w.error());
      return true;
    }
    const auto detected = Clock::now();
    ++stats_.failures;
    Error first = current_->domain().failure().value_or(cause);
    first.plugin = name_;
    // An instance that ran healthily for a whole window ends the streak (see the file comment).
    if (detected - ready_at_ >= rp_.window) streak_ = 0;
    pending_.push_back({EventKind::failed, name_, first, 0, {}, streak_});
    last_cause_ = first;
    begin_recovery_locked();
    std::shared_ptr<Plugin<Api>> failed = current_;
    flush_events(g);
    // Release now, not when the last in-flight caller drops the old instance; outside the lock,
    // so a release hook that calls in gets an error instead of a deadlock.
    const std::size_t released = failed->domain().handles().release_all();
    g.lock();
    stats_.released += released;
    pending_.push_back({EventKind::released, name_, {}, released, {}, 0});
    flush_events(g);
    if (auto r = run_recovery(detected); !r) return std::unexpected(r.error());
    return true;
  }

  void begin_recovery_locked() {
    recovering_ = true;
    recoverer_ = std::this_thread::get_id();
  }
  // Ends the recovery in progress; waiting callers learn the outcome. Caller holds mu_.
  void end_recovery_locked() {
    recovering_ = false;
    backing_off_ = false;
    recoverer_ = {};
    wake_waiters_locked();
  }
  void wake_waiters_locked() {
    ++epoch_;
    recovery_cv_.notify_all();
  }
  // Gives up: disabled until reset(). Caller holds mu_.
  void disable_locked(std::string why, const Error& cause) {
    Error e = cause;
    e.plugin = name_;
    e.detail = "disabled: " + why + " (reset() re-enables it); last failure: " + cause.detail;
    disabled_ = e;
    pending_.push_back({EventKind::disabled, name_, e, 0, {}, streak_});
    end_recovery_locked();
  }

  // Restart attempts until one brings a fresh instance up or the policy says stop (file
  // comment). Called by the recovering thread without mu_; takes it only between the steps.
  Result<void> run_recovery(Clock::time_point detected) {
    const auto deadline = detected + rp_.recovery_timeout;
    for (;;) {
      std::vector<LogEntry> log;
      Clock::duration delay{};
      {
        std::unique_lock g(mu_);
        const auto now = Clock::now();
        if (streak_ >= rp_.max_restarts || now >= deadline) {
          disable_locked(streak_ >= rp_.max_restarts
                             ? std::to_string(streak_) + " restarts without " + std::to_string(rp_.window.count()) +
                                   " ms of healthy running"
                             : "recovery took longer than its budget of " +
                                   std::to_string(rp_.recovery_timeout.count()) + " ms",
                         last_cause_);
          Error e = disabled_error();
          flush_events(g);
          return std::unexpected(e);
        }
        if (streak_ > 0 && rp_.backoff_initial.count() > 0) {
          auto d = rp_.backoff_initial * (1ll << std::min(streak_ - 1, 20u));
          delay = std::min<Clock::duration>({d, rp_.backoff_max, deadline - now});
        }
        if (delay.count() > 0) {
          backing_off_ = true;  // callers get an error now rather than wait through it
          wake_waiters_locked();
        }
        log = log_;
      }
      if (delay.count() > 0) std::this_thread::sleep_for(delay);
      {
        std::unique_lock g(mu_);
        backing_off_ = false;
        ++streak_;
      }
      Xlat xlat;
      auto fresh = attempt(log, deadline, xlat);
      std::unique_lock g(mu_);
      if (fresh) {
        current_ = std::move(*fresh);
        xlat_.swap(xlat);  // ext handles not re-created by the replay are gone
        ++gen_;
        ready_at_ = Clock::now();
        ++stats_.restarts;
        stats_.replayed += log.size();
        pending_.push_back({EventKind::restarted, name_, {}, log.size(), ready_at_ - detected, streak_});
        end_recovery_locked();
        flush_events(g);
        return {};
      }
      // A second failure during start or replay: go round again (if the policy allows).
      last_cause_ = fresh.error();
      ++stats_.failures;
      pending_.push_back({EventKind::restart_failed, name_, last_cause_, 0, {}, streak_});
      if (last_cause_.kind == Errc::load_failed || last_cause_.kind == Errc::misuse) {
        // Loading cannot succeed by trying again (file gone, bad setup).
        disable_locked("the plugin cannot be started again", last_cause_);
        Error e = disabled_error();
        flush_events(g);
        return std::unexpected(e);
      }
      wake_waiters_locked();  // their attempt failed: they get an error
      flush_events(g);
    }
  }
  // One restart attempt, without mu_: a fresh instance with `log` replayed into it, or the
  // failure (its host objects released). A replay still running at `deadline` is cut off.
  Result<std::shared_ptr<Plugin<Api>>> attempt(const std::vector<LogEntry>& log, Clock::time_point deadline, Xlat& xlat) {
    auto p = Plugin<Api>::load(path_, entry_, policy_, name_);
    if (!p) return std::unexpected(p.error());
    auto fresh = std::make_shared<Plugin<Api>>(std::move(*p));
    Result<void> ok{};
    if (!log.empty()) {
      detail::ReplayWatchdog dog(fresh->domain(), deadline);
      for (auto& e : log) {
        ok = e.replay(*fresh, xlat);
        if (!ok) break;
      }
      if (dog.disarm()) {  // killed: whatever the replay returned, the instance is gone
        ok = std::unexpected(named(Errc::hung, "replay did not finish within the recovery's budget of " +
                                                   std::to_string(rp_.recovery_timeout.count()) + " ms"));
      }
    }
    if (ok) return fresh;
    const std::size_t released = fresh->domain().handles().release_all();
    {
      std::unique_lock g(mu_);
      stats_.released += released;
    }
    return std::unexpected(ok.error());
  }

  void count_retry() {
    {
      std::unique_lock g(mu_);
      ++stats_.retried;
    }
    emit({EventKind::retried, name_, {}, 0, {}, 0});
  }
  void emit_error_to_caller(const Error& e) {
    {
      std::unique_lock g(mu_);
      ++stats_.errors_to_callers;
    }
    emit({EventKind::error_to_caller, name_, e, 0, {}, 0});
  }
  // Hooks run outside the lock (they may log, count, even read stats()). Leaves `g` unlocked.
  void flush_events(std::unique_lock<std::shared_mutex>& g) {
    std::vector<RecoveryEvent> events;
    events.swap(pending_);
    g.unlock();
    for (const auto& e : events) emit(e);
  }
  void emit(const RecoveryEvent& ev) const {
    if (sink_) sink_(ev);
  }

  void heartbeat_loop() {
    std::unique_lock<std::mutex> lk(hb_mu_);
    for (;;) {
      // One interval after the last beat ended, against an absolute deadline: a wake-up that is
      // not a stop does not move the next beat.
      if (hb_cv_.wait_until(lk, Clock::now() + rp_.heartbeat, [this] { return hb_stop_; })) break;
      lk.unlock();
      std::shared_ptr<Plugin<Api>> p;
      std::uint64_t gen;
      bool idle;
      {
        std::shared_lock g(mu_);
        p = current_;
        gen = gen_;
        idle = !disabled_ && !recovering_;
      }
      if (idle && p) {
        auto r = p->domain().heartbeat(rp_.heartbeat_timeout);
        // An idle extension that stopped answering is recovered now, not at the next call.
        if (!r) (void)recover(gen, r.error());
      }
      lk.lock();
    }
  }

  std::string path_, entry_;
  Policy policy_;
  RestartPolicy rp_;
  std::string name_;
  EventSink sink_;

  mutable std::shared_mutex mu_;  // guards everything below
  std::shared_ptr<Plugin<Api>> current_;
  std::uint64_t gen_ = 0;           // bumped when a fresh instance replaces current_
  Clock::time_point ready_at_{};    // when current_ came up
  unsigned streak_ = 0;             // restarts since the extension last ran healthily
  bool recovering_ = false;         // a recovery is in progress (on thread recoverer_)
  bool backing_off_ = false;        // ... and sleeping between attempts
  std::thread::id recoverer_{};
  std::uint64_t epoch_ = 0;         // bumped when an attempt ends or a backoff starts
  std::condition_variable_any recovery_cv_;  // waits for epoch_ to change
  std::optional<Error> disabled_;   // set: disabled, with why
  Error last_cause_;
  std::vector<LogEntry> log_;
  std::vector<RecoveryEvent> pending_;  // emitted once the lock is released
  Xlat xlat_;
  std::uint64_t next_virtual_ = 0x1000;
  Stats stats_;

  std::mutex hb_mu_;
  std::condition_variable hb_cv_;
  bool hb_stop_ = false;
  std::thread hb_;
};

// Loads extensions under one restart policy and one event sink.
class Supervisor {
 public:
  explicit Supervisor(RestartPolicy rp = {}, EventSink sink = {}) : rp_(rp), sink_(std::move(sink)) {}

  template <class Api>
  [[nodiscard]] Result<std::unique_ptr<Extension<Api>>> load(std::string path, std::string entry, Policy policy = Policy(),
                                                             std::string name = {}) {
    auto ext = std::make_unique<Extension<Api>>(std::move(path), std::move(entry), std::move(policy), rp_, std::move(name),
                                                sink_);
    if (auto r = ext->start(); !r) return std::unexpected(r.error());
    return ext;
  }

 private:
  RestartPolicy rp_;
  EventSink sink_;
};

}  // namespace ward
