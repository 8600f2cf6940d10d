// RecoveryCore: the part of the supervisor that does not depend on the extension's interface —
// failure bookkeeping, streaks, backoff, the recovery's deadline, disabling and reset(), callers
// waiting for a recovery in progress, the replay watchdog, the heartbeat thread, stats and
// notices. The contract it keeps (restart policy, worst-case waits, threads) is supervisor.h's
// file comment.
//
// Extension<Api> (supervisor.h) owns one core and supplies what is typed: it starts instances
// (Launch, a LiveInstance the core reaches only through its Domain), issues each call between
// admit() and after_failure(), and records the state-setting calls (record()) as closures the
// core replays into fresh instances.
//
// Locking: one shared_mutex (mu_) guards the state below and the replay log. The tokens the host
// holds (opaque pointers, ext handles) live in each instance's domain (OpaqueTable, its own lock).
// Calls take it shared to be admitted; the recovering thread takes it exclusive, only between
// its steps (never while an instance starts, replays or backs off). Notices and release hooks
// run outside it, on the thread that took the step.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <atomic>
#include <thread>
#include <utility>
#include <vector>

#include "ward/core/error.h"
#include "ward/iface/callback_journal.h"
#include "ward/process/domain.h"
#include "ward/recovery/notice.h"
#include "ward/recovery/replay_log.h"
#include "ward/recovery/restart_policy.h"

namespace ward::detail {

// One running instance of an extension as the core sees it: only its domain. Extension<Api>
// derives the typed instance that also holds the Instance<Api>.
class LiveInstance {
 public:
  virtual ~LiveInstance() = default;
  [[nodiscard]] virtual Domain& domain() = 0;
};

class RecoveryCore {
 public:
  using Clock = std::chrono::steady_clock;
  // Starts a fresh instance named `name` (empty: the domain picks one) whose extension sees its
  // window at `arena_at` (Spec::arena_at; 0: anywhere). Bounded by the Policy's load_timeout;
  // errors as Domain::start's.
  using Launch = std::function<Result<std::shared_ptr<LiveInstance>>(const std::string& name, std::uint64_t arena_at)>;

  struct Stats {
    // failures: of instances and of restart attempts; restarts: instances restarted and replayed.
    std::uint64_t failures = 0, restarts = 0, replayed = 0, retried = 0, errors_to_callers = 0, released = 0;
    // Callbacks of retried or replayed calls answered from the earlier run's record instead of
    // running the host's function again, and the calls whose callbacks diverged from it.
    std::uint64_t callbacks_suppressed = 0, callbacks_diverged = 0;
    // The replay log: entries it holds now (what a recovery replays), entries ever logged, and
    // entries compaction dropped or never logged (replay_log.h).
    std::size_t log_size = 0;
    std::uint64_t log_recorded = 0, log_dropped = 0;
    // Checkpoints (recovery/checkpoint.h): taken, failed (the error went to the caller of
    // checkpoint(), or was dropped for an automatic one), and recoveries that restored one; the
    // size of the one kept and how long callers were held back for the last one (drain + copy).
    std::uint64_t checkpoints = 0, checkpoint_failures = 0, restored_from_checkpoint = 0;
    std::size_t checkpoint_bytes = 0;
    std::chrono::nanoseconds checkpoint_pause{0};
  };

  // What one call has already done, across its sends: it runs or waits for one recovery at most
  // (that is what bounds a caller's wait), resends what never reached the extension a few times,
  // retries an idempotent call once.
  struct CallState {
    bool recovered = false;
    int resends = 0;
    int retries = 0;
  };
  // The instance a call goes to, and its generation (a failure seen on an older one was
  // already recovered from).
  struct Ticket {
    std::shared_ptr<LiveInstance> instance;
    std::uint64_t gen = 0;
  };
  enum class Next { resend, give_error };  // after_failure's answer

  // `call_timeout` is the Policy's: the longest a caller waits for another thread's attempt.
  RecoveryCore(Launch launch, std::chrono::nanoseconds call_timeout, RestartPolicy rp, std::string name,
               NoticeSink sink);
  // Stops the heartbeat, waiting for a recovery it runs (bounded: see supervisor.h).
  ~RecoveryCore();
  RecoveryCore(const RecoveryCore&) = delete;
  RecoveryCore& operator=(const RecoveryCore&) = delete;

  // Starts the first instance (and the heartbeat, if the policy asks for one).
  [[nodiscard]] Result<void> start();

  // Admits a call: waits for a recovery in progress (once per call), fails fast when disabled,
  // then runs `translate(const OpaqueTable&)` -> Result<void> over the current instance's tokens
  // under the lock, so the call's ext handles and the instance it goes to belong to the same
  // generation.
  // A call admitted is in flight until its InFlight ends (checkpoint() waits for none).
  template <class Translate>
  [[nodiscard]] Result<Ticket> admit(CallState& s, Translate&& translate) {
    std::shared_lock g(mu_);
    // A checkpoint is draining the calls in flight: wait for it (it is bounded by 2 call
    // timeouts), unless this thread is inside a call already (a host service calling in).
    if (quiescing_.load() && thread_calls() == 0)
      recovery_cv_.wait_until(g, Clock::now() + 2 * call_timeout_, [&] { return !quiescing_.load(); });
    if (recovering_) {
      WARD_TRY(join_recovery(g, s));
    }
    if (disabled_) return std::unexpected(disabled_error());
    WARD_TRY(translate(std::as_const(current_->domain().opaques())));
    inflight_.fetch_add(1);
    ++thread_calls();
    return Ticket{current_, gen_};
  }
  // Ends what admit() began: the call has returned and recorded what it logs.
  class InFlight {
   public:
    explicit InFlight(RecoveryCore& c) : c_(&c) {}
    ~InFlight() { end(); }
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;
    void end() {
      if (c_) std::exchange(c_, nullptr)->call_done();
    }

   private:
    RecoveryCore* c_;
  };

  // Checkpoints (recovery/checkpoint.h). Takes one now: waits (at most the call timeout) for
  // the calls in flight to end while holding new ones back, copies the instance's state, and
  // drops the log before it. Errors: misuse (not declared checkpointable, during a recovery,
  // from inside a call or a notice sink, another checkpoint under way, the instance holds host
  // objects or state a checkpoint cannot capture); limit (calls did not drain in time, the state
  // does not fit the checkpointable heap); the extension's failure if it failed meanwhile (the
  // next call recovers it; the previous checkpoint stays).
  [[nodiscard]] Result<void> checkpoint();
  // After a call completed: takes a checkpoint if the policy's every_logged count is reached.
  void maybe_checkpoint();
  // A call sent on `t` failed with `e`: recovers the extension if it failed, and says whether to
  // send the call again (it never reached the failed instance, or it is idempotent) or to give
  // the caller its error. An error: give the caller that one instead (the recovery's).
  [[nodiscard]] Result<Next> after_failure(CallState& s, const Ticket& t, const Error& e, bool idempotent);

  // A successful state-setting call, to replay after every restart (after `cancel`, if any:
  // ReplayLog::record).
  void record(ReplayLog::Entry e, const ReplayLog::Cancel* cancel);
  // A ward::releases call closed `token`: what was logged for it goes (ReplayLog::release).
  // True if the last checkpoint holds the token's object: the caller logs the closing call.
  [[nodiscard]] bool released(std::uint64_t token);
  // What the callbacks of one attempt (or replay) of `function` did against the call's record:
  // counted, and a divergence is a notice (callbacks_diverged). Takes the lock: not under it.
  void callbacks_settled(const CallbackJournal::Outcome& o, const char* function);

  [[nodiscard]] bool disabled() const;
  // Re-enables the extension (see Extension::reset).
  [[nodiscard]] Result<void> reset();
  [[nodiscard]] Stats stats() const;
  [[nodiscard]] std::shared_ptr<LiveInstance> current() const;
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  [[nodiscard]] Error named(Errc kind, std::string detail) const;
  [[nodiscard]] Error disabled_error() const;
  [[nodiscard]] Error recovering_error() const;
  Result<void> join_recovery(std::shared_lock<std::shared_mutex>& g, CallState& s);
  template <class Lock>
  Result<void> await_recovery(Lock& g);
  Result<bool> recover(std::uint64_t gen, const Error& cause);
  void begin_recovery_locked();
  void end_recovery_locked();
  void wake_waiters_locked();
  void disable_locked(std::string why, const Error& cause);
  Result<void> run_recovery(Clock::time_point detected);
  // The last checkpoint: the instance's state and the tokens live in it.
  struct Snapshot {
    std::vector<std::byte> state;
    std::vector<OpaqueTable::Live> tokens;
  };
  // What one restart attempt brings back: the checkpoint (if any), the log after it, and the
  // tokens closed since it.
  struct Restore {
    std::shared_ptr<const Snapshot> snapshot;
    std::vector<ReplayLog::Entry> log;
    std::vector<std::uint64_t> closed;
  };
  Result<std::shared_ptr<LiveInstance>> attempt(const Restore& what, Clock::time_point deadline, LiveInstance& failed);
  void call_done();
  static int& thread_calls();  // calls this thread has in flight (any extension)
  void count_retry();
  void give_error_to_caller(const Error& e);
  void flush_notices(std::unique_lock<std::shared_mutex>& g);
  void notify(const RecoveryNotice& n) const;
  void heartbeat_loop();

  const Launch launch_;
  const std::chrono::nanoseconds call_timeout_;
  const RestartPolicy rp_;
  std::string name_;  // set by start() at the latest, then constant
  const NoticeSink sink_;

  mutable std::shared_mutex mu_;  // guards everything below
  std::shared_ptr<LiveInstance> current_;
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
  ReplayLog log_;
  std::shared_ptr<const Snapshot> snapshot_;  // the last checkpoint
  std::uint64_t logged_since_checkpoint_ = 0;
  std::atomic<bool> quiescing_{false};  // a checkpoint holds new calls back (written under mu_)
  std::atomic<std::uint64_t> inflight_{0};  // calls between admit() and InFlight::end()
  std::vector<RecoveryNotice> pending_;  // handed to the sink once the lock is released
  Stats stats_;

  std::mutex hb_mu_;
  std::condition_variable hb_cv_;
  bool hb_stop_ = false;
  std::thread hb_;
};

}  // namespace ward::detail
