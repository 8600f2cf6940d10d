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
// (ward::ext_handle), so handles the host holds keep working. Then the failed call is retried if
// the interface marks it ward::idempotent; otherwise only that caller gets the error.
//
// Restart policy: at most `max_restarts` within `window`; past it the extension is disabled and
// calls fail fast until reset(). A failure during replay counts as another failure.
//
// Threads: any number of host threads may call; recovery runs on the thread that found the
// failure while the others wait for it (or fail fast if disabled). Event hooks run on that
// thread, outside the supervisor's locks, after the recovery they report; they must not call
// into the same extension. Release hooks of the failed instance's host objects run during
// recovery, under the supervisor's lock: they must not call into the same extension either.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <optional>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "ward/plugin.h"
#include "ward/handle_table.h"

namespace ward {

struct RestartPolicy {
  unsigned max_restarts = 5;                            // within `window`
  std::chrono::milliseconds window{std::chrono::seconds(10)};
  std::chrono::milliseconds backoff_initial{0};         // before the 2nd restart in a window
  std::chrono::milliseconds backoff_max{std::chrono::milliseconds(200)};
  std::chrono::milliseconds heartbeat{0};               // 0: no heartbeat
  std::chrono::milliseconds heartbeat_timeout{std::chrono::milliseconds(500)};
};

enum class EventKind : std::uint8_t {
  failed,           // a failure was detected (cause)
  released,         // the failed instance's host objects were released (count)
  restarted,        // a fresh instance runs and its state was replayed (count = calls replayed)
  restart_failed,   // starting or replaying failed (cause); another attempt follows if allowed
  retried,          // an idempotent call was retried after recovery
  error_to_caller,  // a non-idempotent call failed; its caller got the error
  disabled,         // too many restarts: calls fail fast until reset()
  reset,            // the host re-enabled the extension
};
[[nodiscard]] std::string_view to_string(EventKind k) noexcept;

struct RecoveryEvent {
  EventKind kind;
  std::string extension;
  Error cause;                        // failed, restart_failed, error_to_caller, disabled
  std::size_t count = 0;              // released: objects; restarted: calls replayed
  std::chrono::nanoseconds elapsed{}; // restarted: from detection to the fresh instance ready
  unsigned restarts_in_window = 0;
};

using EventSink = std::function<void(const RecoveryEvent&)>;

// Extension-issued handles (a session id the plugin returns and later takes back) crossing a
// restart: the host sees stable virtual values; the supervisor maps them to the current
// instance's real values, re-learned when the call that created them is replayed.
template <class Api>
class Extension;

namespace detail {

// Arguments of a state-setting call, deep-copied so the call can be replayed into a new
// instance: strings and in-buffers by value, out-buffers as scratch space of the same size,
// service tables by pointer (the host's tables outlive the extension).
template <class F, std::size_t... I>
struct CapturedImpl {
  std::tuple<store_t<F, I>...> store{};
  std::array<bool, F::arity + 1> nonnull{};
  std::tuple<std::tuple_element_t<I, typename F::args>...> services{};
};

template <class F, class Args, std::size_t... I>
auto capture_args(const Args& args, std::index_sequence<I...>) {
  CapturedImpl<F, I...> c;
  (
      [&] {
        constexpr wire::Param d = param_desc<F, I>();
        const auto& v = std::get<I>(args);
        if constexpr (d.kind == wire::Kind::cstring) {
          c.nonnull[I] = v != nullptr;
          if (v) std::get<I>(c.store) = v;
        } else if constexpr (d.kind == wire::Kind::buffer) {
          std::uint64_t n = 1;
          if constexpr (d.count_arg != 0xff) (void)count_of(std::get<d.count_arg>(args), n);
          c.nonnull[I] = v != nullptr;
          auto& vec = std::get<I>(c.store);
          if (v) {
            vec.resize(n ? n : 1);
            if constexpr (d.dir != wire::Dir::out) std::memcpy(vec.data(), static_cast<const void*>(v), n * d.size);
          }
        } else if constexpr (d.kind == wire::Kind::services) {
          std::get<I>(c.services) = v;
        } else {
          std::get<I>(c.store) = v;
        }
      }(),
      ...);
  return c;
}

template <class F, std::size_t I, class C>
auto replay_arg(C& c) -> std::tuple_element_t<I, typename F::args> {
  using P = std::tuple_element_t<I, typename F::args>;
  constexpr wire::Param d = param_desc<F, I>();
  if constexpr (d.kind == wire::Kind::cstring) {
    return c.nonnull[I] ? std::get<I>(c.store).c_str() : nullptr;
  } else if constexpr (d.kind == wire::Kind::buffer) {
    return c.nonnull[I] ? reinterpret_cast<P>(std::get<I>(c.store).data()) : nullptr;
  } else if constexpr (d.kind == wire::Kind::services) {
    return std::get<I>(c.services);
  } else {
    return std::get<I>(c.store);
  }
}

}  // namespace detail

template <class Api>
class Extension {
 public:
  using Clock = std::chrono::steady_clock;

  Extension(std::string path, std::string entry, Policy policy, RestartPolicy rp, std::string name, EventSink sink)
      : path_(std::move(path)), entry_(std::move(entry)), policy_(std::move(policy)), rp_(rp), name_(std::move(name)),
        sink_(std::move(sink)) {}
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
  // Re-enables a disabled extension: starts a fresh instance and replays the log.
  [[nodiscard]] Result<void> reset() {
    std::unique_lock g(mu_);
    disabled_.reset();
    restarts_.clear();
    pending_.push_back({EventKind::reset, name_, {}, 0, {}, 0});
    auto r = restart_locked(Clock::now());
    flush_events(g);
    return r;
  }

  struct Stats {
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
  [[nodiscard]] pid_t pid() const { return current()->domain().pid(); }
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
    for (int attempt = 0, retried = 0;; ++attempt) {
      std::shared_ptr<Plugin<Api>> p;
      std::uint64_t gen;
      Args real = args;  // ext handles translated; `args` keeps the host's values for the log
      {
        std::shared_lock g(mu_);
        if (disabled_) return R(std::unexpected(disabled_error({})));
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
      auto rec = recover(gen, r.error());
      if (!rec) return R(std::unexpected(rec.error()));
      // A call that found the instance already failed never reached it: always safe to resend.
      if (r.error().earlier && attempt < 8) {
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
    auto captured = std::make_shared<decltype(detail::capture_args<F>(args, std::index_sequence<I...>{}))>(
        detail::capture_args<F>(args, std::index_sequence<I...>{}));
    LogEntry e;
    e.fn = static_cast<std::uint32_t>(detail::index_of_fn<Api, F::member>());
    e.replay = [captured, virt](Plugin<Api>& p, Xlat& x) -> Result<void> {
      typename F::args a{detail::replay_arg<F, I>(*captured)...};
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

  Error disabled_error(std::string) const {
    Error e = *disabled_;
    e.earlier = true;
    e.detail = "disabled after " + std::to_string(rp_.max_restarts) + " restarts within " +
               std::to_string(rp_.window.count()) + " ms (reset() re-enables it); last failure: " + e.detail;
    return e;
  }

  // Recovers from the failure seen on generation `gen`; a no-op if another thread already did.
  // The whole recovery holds the lock (so it happens once); its events are emitted after.
  Result<void> recover(std::uint64_t gen, const Error& cause) {
    std::unique_lock g(mu_);
    auto r = recover_locked(gen, cause);
    flush_events(g);
    return r;
  }

  Result<void> recover_locked(std::uint64_t gen, const Error& cause) {
    if (gen != gen_) return {};
    if (disabled_) return std::unexpected(disabled_error({}));
    const auto detected = Clock::now();
    ++stats_.failures;
    Error first = current_->domain().failure().value_or(cause);
    first.plugin = name_;
    pending_.push_back({EventKind::failed, name_, first, 0, {}, static_cast<unsigned>(restarts_.size())});
    // Release now, not when the last in-flight caller drops the old instance.
    const std::size_t released = current_->domain().handles().release_all();
    stats_.released += released;
    pending_.push_back({EventKind::released, name_, {}, released, {}, 0});
    last_cause_ = first;
    return restart_locked(detected);
  }

  Result<void> restart_locked(Clock::time_point detected) {
    Xlat xlat;
    for (;;) {
      const auto now = Clock::now();
      while (!restarts_.empty() && now - restarts_.front() > rp_.window) restarts_.pop_front();
      if (restarts_.size() >= rp_.max_restarts) {
        disabled_ = last_cause_;
        Error e = disabled_error({});
        pending_.push_back({EventKind::disabled, name_, e, 0, {}, static_cast<unsigned>(restarts_.size())});
        return std::unexpected(e);
      }
      if (!restarts_.empty() && rp_.backoff_initial.count() > 0) {
        auto delay = rp_.backoff_initial * (1ll << std::min<std::size_t>(restarts_.size() - 1, 20));
        if (delay > rp_.backoff_max) delay = rp_.backoff_max;
        std::this_thread::sleep_for(delay);
      }
      restarts_.push_back(Clock::now());
      ++stats_.restarts;
      auto p = Plugin<Api>::load(path_, entry_, policy_, name_);
      Result<void> ok{};
      std::shared_ptr<Plugin<Api>> fresh;
      if (!p) {
        ok = std::unexpected(p.error());
      } else {
        fresh = std::make_shared<Plugin<Api>>(std::move(*p));
        xlat.clear();
        for (auto& e : log_) {
          ok = e.replay(*fresh, xlat);
          if (!ok) break;
        }
      }
      if (ok) {
        current_ = std::move(fresh);
        xlat_.swap(xlat);  // ext handles not re-created by the replay are gone
        ++gen_;
        stats_.replayed += log_.size();
        pending_.push_back({EventKind::restarted, name_, {}, log_.size(), Clock::now() - detected,
                          static_cast<unsigned>(restarts_.size())});
        return {};
      }
      // A second failure during start or replay: release what it held and go round again.
      Error e = ok.error();
      if (fresh) stats_.released += fresh->domain().handles().release_all();
      last_cause_ = e;
      ++stats_.failures;
      pending_.push_back({EventKind::restart_failed, name_, e, 0, {}, static_cast<unsigned>(restarts_.size())});
      if (e.kind == Errc::load_failed || e.kind == Errc::misuse) {
        // Loading cannot succeed by trying again (file gone, bad setup): disable now.
        disabled_ = e;
        pending_.push_back({EventKind::disabled, name_, e, 0, {}, static_cast<unsigned>(restarts_.size())});
        return std::unexpected(disabled_error({}));
      }
    }
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
  // Hooks run outside the lock (they may log, count, even read stats()).
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
    while (!hb_stop_) {
      hb_cv_.wait_for(lk, rp_.heartbeat);
      if (hb_stop_) break;
      lk.unlock();
      std::shared_ptr<Plugin<Api>> p;
      std::uint64_t gen;
      bool off;
      {
        std::shared_lock g(mu_);
        p = current_;
        gen = gen_;
        off = disabled_.has_value();
      }
      if (!off && p) {
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
  std::uint64_t gen_ = 0;
  std::deque<Clock::time_point> restarts_;
  std::optional<Error> disabled_;
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
