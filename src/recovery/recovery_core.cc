// The supervisor's interface-independent core: see ward/recovery/detail/recovery_core.h, and
// supervisor.h's file comment for the contract these steps keep.
#include "ward/recovery/detail/recovery_core.h"

#include <algorithm>

namespace ward::detail {
namespace {

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

}  // namespace

RecoveryCore::RecoveryCore(Launch launch, std::chrono::nanoseconds call_timeout, RestartPolicy rp, std::string name,
                           NoticeSink sink)
    : launch_(std::move(launch)), call_timeout_(call_timeout), rp_(rp), name_(std::move(name)),
      sink_(std::move(sink)) {}

RecoveryCore::~RecoveryCore() {
  {
    std::lock_guard<std::mutex> g(hb_mu_);
    hb_stop_ = true;
  }
  hb_cv_.notify_all();
  if (hb_.joinable()) hb_.join();
}

Result<void> RecoveryCore::start() {
  auto fresh = WARD_TRY(launch_(name_, 0));
  if (rp_.checkpoint.heap_bytes != 0) {
    // Kernel state a copy of memory cannot carry (recovery/checkpoint.h).
    const Policy& p = fresh->domain().policy();
    const char* what = p.allows_file_open()           ? "unsafe_allow_file_open"
                       : p.allows_sockets()            ? "unsafe_allow_sockets"
                       : p.allows_threads()            ? "unsafe_allow_threads"
                       : p.allows_process_creation()   ? "unsafe_allow_process_creation"
                                                       : nullptr;
    if (what)
      return std::unexpected(named(Errc::misuse, std::string("not checkpointable: the policy's ") + what +
                                                     " lets the extension hold kernel state (files, sockets, "
                                                     "threads, processes) that a checkpoint cannot capture"));
  }
  if (name_.empty()) name_ = fresh->domain().name();
  current_ = std::move(fresh);
  ready_at_ = Clock::now();
  if (rp_.heartbeat.count() > 0) hb_ = std::thread([this] { heartbeat_loop(); });
  return {};
}

// ---- the calls ------------------------------------------------------------------------------

Result<RecoveryCore::Next> RecoveryCore::after_failure(CallState& s, const Ticket& t, const Error& e, bool idempotent) {
  // Failures of the host's own making leave the extension alive: nothing to recover.
  if (t.instance->domain().alive()) return Next::give_error;
  if (s.recovered) {
    give_error_to_caller(e);
    return Next::give_error;
  }
  s.recovered = WARD_TRY(recover(t.gen, e));
  // A call that found the instance already failed never reached it: always safe to resend.
  if ((e.earlier && s.resends++ < 8) || (idempotent && s.retries++ == 0)) {
    count_retry();
    return Next::resend;
  }
  give_error_to_caller(e);
  return Next::give_error;
}

void RecoveryCore::record(ReplayLog::Entry e, const ReplayLog::Cancel* cancel) {
  std::unique_lock g(mu_);
  log_.record(std::move(e), cancel);
  ++logged_since_checkpoint_;
}

bool RecoveryCore::released(std::uint64_t token) {
  std::unique_lock g(mu_);
  return log_.release(token);
}

// ---- checkpoints (recovery/checkpoint.h) ----------------------------------------------------

int& RecoveryCore::thread_calls() {
  thread_local int n = 0;
  return n;
}

void RecoveryCore::call_done() {
  --thread_calls();
  // The last call in flight wakes a checkpoint draining them (under mu_: it cannot miss it).
  if (inflight_.fetch_sub(1) == 1 && quiescing_.load()) {
    std::unique_lock g(mu_);
    recovery_cv_.notify_all();
  }
}

Result<void> RecoveryCore::checkpoint() {
  if (rp_.checkpoint.heap_bytes == 0)
    return std::unexpected(named(Errc::misuse, "not checkpointable: RestartPolicy::checkpoint.heap_bytes is 0"));
  if (thread_calls() > 0)
    return std::unexpected(named(Errc::misuse, "checkpoint() from inside a call to an extension (a host service or "
                                               "callback): a checkpoint needs the extension idle"));
  const auto t0 = Clock::now();
  std::unique_lock g(mu_);
  if (recoverer_ == std::this_thread::get_id())
    return std::unexpected(named(Errc::misuse, "checkpoint() from the extension's own recovery (a notice sink or "
                                               "release hook)"));
  if (disabled_) return std::unexpected(disabled_error());
  if (recovering_) return std::unexpected(named(Errc::misuse, "checkpoint() during a recovery"));
  if (quiescing_.load()) return std::unexpected(named(Errc::misuse, "another checkpoint is being taken"));
  quiescing_.store(true);
  // Let the calls in flight finish and log (they take mu_), holding new ones back.
  const bool idle = recovery_cv_.wait_until(g, t0 + call_timeout_, [&] { return inflight_.load() == 0; });
  auto give_up = [&](Error e) -> Result<void> {
    ++stats_.checkpoint_failures;
    logged_since_checkpoint_ = 0;  // an automatic one tries again after as many calls
    quiescing_.store(false);
    recovery_cv_.notify_all();
    return std::unexpected(std::move(e));
  };
  if (!idle)
    return give_up(named(Errc::limit, "checkpoint: the calls in flight did not finish within the call timeout"));
  if (disabled_) return give_up(disabled_error());
  if (recovering_) return give_up(named(Errc::misuse, "checkpoint() during a recovery"));
  Domain& d = current_->domain();
  if (const std::size_t held = d.handles().live_handles(); held != 0)
    return give_up(named(Errc::misuse, "not checkpointable now: the extension holds " + std::to_string(held) +
                                           " host object(s) by handle, which are released with the instance"));
  auto state = d.checkpoint(call_timeout_);
  if (!state) return give_up(state.error());
  auto snap = std::make_shared<Snapshot>();
  snap->state = std::move(*state);
  snap->tokens = d.opaques().live();
  std::vector<std::uint64_t> live;
  live.reserve(snap->tokens.size());
  for (const auto& t : snap->tokens) live.push_back(t.token);
  log_.checkpointed(std::move(live));
  logged_since_checkpoint_ = 0;
  ++stats_.checkpoints;
  stats_.checkpoint_bytes = snap->state.size();
  snapshot_ = std::move(snap);
  stats_.checkpoint_pause = Clock::now() - t0;
  quiescing_.store(false);
  recovery_cv_.notify_all();
  return {};
}

void RecoveryCore::maybe_checkpoint() {
  if (rp_.checkpoint.every_logged == 0 || thread_calls() > 0) return;
  {
    std::shared_lock g(mu_);
    if (logged_since_checkpoint_ < rp_.checkpoint.every_logged || recovering_ || disabled_ || quiescing_.load()) return;
  }
  (void)checkpoint();  // a failure is counted (stats) and retried after as many calls
}

void RecoveryCore::callbacks_settled(const CallbackJournal::Outcome& o, const char* function) {
  if (o.suppressed == 0 && !o.diverged) return;  // the common case: nothing to count, no lock
  {
    std::unique_lock g(mu_);
    stats_.callbacks_suppressed += o.suppressed;
    if (o.diverged) ++stats_.callbacks_diverged;
  }
  if (!o.diverged) return;
  Error cause = named(Errc::bad_data, "callbacks diverged from the earlier attempt's: " + o.why +
                                          "; delivered from there on");
  cause.function = function;
  notify({NoticeKind::callbacks_diverged, name_, std::move(cause), o.suppressed, {}, 0});
}

// ---- the host's view ----------------------------------------------------------------------

bool RecoveryCore::disabled() const {
  std::shared_lock g(mu_);
  return disabled_.has_value();
}

Result<void> RecoveryCore::reset() {
  std::unique_lock g(mu_);
  if (recovering_) return std::unexpected(named(Errc::misuse, "reset() while a recovery is in progress"));
  disabled_.reset();
  streak_ = 0;
  pending_.push_back({NoticeKind::reset, name_, {}, 0, {}, 0});
  const auto now = Clock::now();
  begin_recovery_locked();
  flush_notices(g);
  return run_recovery(now);
}

RecoveryCore::Stats RecoveryCore::stats() const {
  std::shared_lock g(mu_);
  Stats s = stats_;
  s.log_size = log_.size();
  s.log_recorded = log_.counts().recorded;
  s.log_dropped = log_.counts().dropped;
  return s;
}

std::shared_ptr<LiveInstance> RecoveryCore::current() const {
  std::shared_lock g(mu_);
  return current_;
}

// ---- errors of calls that never reached the extension (callers hold mu_) ----------------------

Error RecoveryCore::named(Errc kind, std::string detail) const {
  Error e = fail(kind, std::move(detail)).error();
  e.plugin = name_;
  return e;
}

Error RecoveryCore::disabled_error() const {
  Error e = *disabled_;
  e.earlier = true;
  return e;
}

Error RecoveryCore::recovering_error() const {
  Error e = last_cause_;
  e.earlier = true;
  e.detail = "not called: recovery in progress after: " + last_cause_.detail;
  return e;
}

// ---- waiting for a recovery ---------------------------------------------------------------

// A call admitted while a recovery is under way waits for it, unless it already ran or waited
// for one (it never waits for a second).
Result<void> RecoveryCore::join_recovery(std::shared_lock<std::shared_mutex>& g, CallState& s) {
  if (s.recovered) return std::unexpected(recovering_error());
  s.recovered = true;
  return await_recovery(g);
}

// A call that finds a recovery under way (mu_ held through `g`, shared or exclusive): waits for
// the attempt in progress to end, at most one call timeout; none during a backoff. OK if that
// attempt brought a fresh instance up.
template <class Lock>
Result<void> RecoveryCore::await_recovery(Lock& g) {
  if (recoverer_ == std::this_thread::get_id())
    return std::unexpected(named(Errc::misuse, "called from its own recovery (a notice sink or release hook, or a "
                                               "host service during replay): it cannot wait for itself"));
  if (!backing_off_) {
    const std::uint64_t epoch = epoch_;
    recovery_cv_.wait_until(g, Clock::now() + call_timeout_, [&] { return epoch_ != epoch; });
  }
  if (disabled_) return std::unexpected(disabled_error());
  if (recovering_) return std::unexpected(recovering_error());
  return {};
}

// ---- the recovery -------------------------------------------------------------------------

// Recovers from the failure seen on generation `gen`. Returns true if this thread ran or waited
// for a recovery, false if the failure had already been recovered from.
Result<bool> RecoveryCore::recover(std::uint64_t gen, const Error& cause) {
  std::unique_lock g(mu_);
  if (gen != gen_) return false;
  if (disabled_) return std::unexpected(disabled_error());
  if (recovering_) {
    WARD_TRY(await_recovery(g));
    return true;
  }
  const auto detected = Clock::now();
  ++stats_.failures;
  Error first = current_->domain().failure().value_or(cause);
  first.plugin = name_;
  // An instance that ran healthily for a whole window ends the streak (see supervisor.h).
  if (detected - ready_at_ >= rp_.window) streak_ = 0;
  pending_.push_back({NoticeKind::failed, name_, first, 0, {}, streak_});
  last_cause_ = first;
  begin_recovery_locked();
  std::shared_ptr<LiveInstance> failed = current_;
  flush_notices(g);
  // Release now, not when the last in-flight caller drops the old instance; outside the lock,
  // so a release hook that calls in gets an error instead of a deadlock.
  const std::size_t released = failed->domain().handles().release_all();
  g.lock();
  stats_.released += released;
  pending_.push_back({NoticeKind::released, name_, {}, released, {}, 0});
  flush_notices(g);
  WARD_TRY(run_recovery(detected));
  return true;
}

void RecoveryCore::begin_recovery_locked() {
  recovering_ = true;
  recoverer_ = std::this_thread::get_id();
}

// Ends the recovery in progress; waiting callers learn the outcome. Caller holds mu_.
void RecoveryCore::end_recovery_locked() {
  recovering_ = false;
  backing_off_ = false;
  recoverer_ = {};
  wake_waiters_locked();
}

void RecoveryCore::wake_waiters_locked() {
  ++epoch_;
  recovery_cv_.notify_all();
}

// Gives up: disabled until reset(). Caller holds mu_.
void RecoveryCore::disable_locked(std::string why, const Error& cause) {
  Error e = cause;
  e.plugin = name_;
  e.detail = "disabled: " + why + " (reset() re-enables it); last failure: " + cause.detail;
  disabled_ = e;
  pending_.push_back({NoticeKind::disabled, name_, e, 0, {}, streak_});
  end_recovery_locked();
}

// Restart attempts until one brings a fresh instance up or the policy says stop (supervisor.h).
// Called by the recovering thread without mu_; takes it only between the steps.
Result<void> RecoveryCore::run_recovery(Clock::time_point detected) {
  const auto deadline = detected + rp_.recovery_timeout;
  for (;;) {
    Restore what;
    std::shared_ptr<LiveInstance> failed;  // holds the sandbox memory until a fresh one takes it
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
        flush_notices(g);
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
      what.snapshot = snapshot_;
      what.log = log_.entries();
      what.closed = log_.released_since_checkpoint();
      failed = current_;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    {
      std::unique_lock g(mu_);
      backing_off_ = false;
      ++streak_;
    }
    auto fresh = attempt(what, deadline, *failed);
    std::unique_lock g(mu_);
    if (fresh) {
      current_ = std::move(*fresh);
      ++gen_;
      ready_at_ = Clock::now();
      ++stats_.restarts;
      stats_.replayed += what.log.size();
      if (what.snapshot) ++stats_.restored_from_checkpoint;
      pending_.push_back({NoticeKind::restarted, name_, {}, what.log.size(), ready_at_ - detected, streak_});
      end_recovery_locked();
      flush_notices(g);
      return {};
    }
    // A second failure during start or replay: go round again (if the policy allows).
    last_cause_ = fresh.error();
    ++stats_.failures;
    pending_.push_back({NoticeKind::restart_failed, name_, last_cause_, 0, {}, streak_});
    if (last_cause_.kind == Errc::load_failed || last_cause_.kind == Errc::misuse) {
      // Loading cannot succeed by trying again (file gone, bad setup).
      disable_locked("the plugin cannot be started again", last_cause_);
      Error e = disabled_error();
      flush_notices(g);
      return std::unexpected(e);
    }
    wake_waiters_locked();  // their attempt failed: they get an error
    flush_notices(g);
  }
}

// One restart attempt, without mu_: a fresh instance with `log` replayed into it, or the failure
// (its host objects released). A replay still running at `deadline` is cut off. The tokens the
// host holds from `failed` are stale in the fresh instance until a replayed call adopts them
// (replay_log.h).
// Sandbox memory: the fresh instance maps its window where `failed`'s extension had it and takes
// the heap, bytes (as the failed instance left them) and allocations, before the replay, so a
// replayed call that stores a pointer into it gets a valid one. If the attempt fails, the heap
// goes back to `failed`'s memory, which no child writes any more (host writes made meanwhile
// are lost).
Result<std::shared_ptr<LiveInstance>> RecoveryCore::attempt(const Restore& what, Clock::time_point deadline,
                                                        LiveInstance& failed) {
  const std::vector<ReplayLog::Entry>& log = what.log;
  auto fresh = WARD_TRY(launch_(name_, failed.domain().extension_base()));
  LiveInstance& inst = *fresh;
  OpaqueTable& tokens = inst.domain().opaques();
  tokens.inherit_stale(failed.domain().opaques());
  Result<void> ok = inst.domain().take_sandbox(failed.domain(), true);
  // A checkpoint first (recovery/checkpoint.h): the instance's state as it was then, and the
  // tokens live in it come back with their values (the same addresses in every instance).
  if (ok && what.snapshot) {
    ok = inst.domain().restore(what.snapshot->state, std::min<std::chrono::nanoseconds>(
                                                         call_timeout_, std::max(deadline - Clock::now(), Clock::duration{})));
    for (const auto& t : what.snapshot->tokens) {
      if (!ok) break;
      auto fresh_token = tokens.token_for(t.value, t.type);
      if (!fresh_token) ok = std::unexpected(fresh_token.error());
      else tokens.adopt(*fresh_token, t.token);
    }
  }
  if (ok && !log.empty()) {
    ReplayWatchdog dog(inst.domain(), deadline);
    for (auto& e : log) {
      ok = e.replay(inst);
      if (!ok) break;
    }
    if (dog.disarm()) {  // killed: whatever the replay returned, the instance is gone
      ok = std::unexpected(named(Errc::hung, "replay did not finish within the recovery's budget of " +
                                                 std::to_string(rp_.recovery_timeout.count()) + " ms"));
    }
  }
  if (ok) {
    for (std::uint64_t t : what.closed) tokens.release(t);  // closed since the checkpoint
    return fresh;
  }
  (void)failed.domain().take_sandbox(failed.domain(), false);
  const std::size_t released = inst.domain().handles().release_all();
  {
    std::unique_lock g(mu_);
    stats_.released += released;
  }
  return std::unexpected(ok.error());
}

// ---- notices ------------------------------------------------------------------------------

void RecoveryCore::count_retry() {
  {
    std::unique_lock g(mu_);
    ++stats_.retried;
  }
  notify({NoticeKind::retried, name_, {}, 0, {}, 0});
}

void RecoveryCore::give_error_to_caller(const Error& e) {
  {
    std::unique_lock g(mu_);
    ++stats_.errors_to_callers;
  }
  notify({NoticeKind::error_to_caller, name_, e, 0, {}, 0});
}

// The sink runs outside the lock (it may log, count, even read stats()). Leaves `g` unlocked.
void RecoveryCore::flush_notices(std::unique_lock<std::shared_mutex>& g) {
  std::vector<RecoveryNotice> notices;
  notices.swap(pending_);
  g.unlock();
  for (const auto& n : notices) notify(n);
}

void RecoveryCore::notify(const RecoveryNotice& n) const {
  if (sink_) sink_(n);
}

// ---- the heartbeat ------------------------------------------------------------------------

void RecoveryCore::heartbeat_loop() {
  std::unique_lock<std::mutex> lk(hb_mu_);
  for (;;) {
    // One interval after the last beat ended, against an absolute deadline: a wake-up that is
    // not a stop does not move the next beat.
    if (hb_cv_.wait_until(lk, Clock::now() + rp_.heartbeat, [this] { return hb_stop_; })) break;
    lk.unlock();
    std::shared_ptr<LiveInstance> inst;
    std::uint64_t gen;
    bool idle;
    {
      std::shared_lock g(mu_);
      inst = current_;
      gen = gen_;
      idle = !disabled_ && !recovering_;
    }
    if (idle && inst) {
      auto r = inst->domain().heartbeat(rp_.heartbeat_timeout);
      // An idle extension that stopped answering is recovered now, not at the next call.
      if (!r) (void)recover(gen, r.error());
    }
    lk.lock();
  }
}

}  // namespace ward::detail
