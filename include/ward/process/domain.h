// ward::ProcessDomain: the process backend of ward::Domain (backend/backend.h): one extension
// instance in a sandboxed child process.
//
// The extension runs in a child started from the `ward-helper` executable (exec, so the image is
// clean even in a multithreaded host) under a seccomp allowlist, no-new-privs, a parent-death
// signal and rlimits, all in force before any plugin code runs. The only memory the host and the
// child share is the arena: every argument and result crosses through it, and the host copies
// and validates whatever it reads back.
//
// Most code uses the typed Instance<Api> (iface/instance.h) on top of ward::Domain and never names
// this class; it is here for what only a process has (its pid) and for ward's own tests.
//
// Threads: calls from several host threads into one domain are serialized (one channel, a
// recursive lock held for the whole outermost call); the extension therefore sees a single
// thread, as a plain C library expects. A host service that calls back into the same domain on
// the same thread nests, up to Policy::max_nesting() levels (deeper: Errc::limit), so a
// recursion the extension drives cannot exhaust the host's stack. A host service must not wait
// for another thread that calls this domain: that thread waits for the lock the service's caller
// holds. Such a cycle is detected, not suffered: a thread waiting for the domain gives up with
// Errc::misuse once the lock's holder has spent Policy::timeout() inside host services during
// the wait (time the holder spends inside the extension is bounded by its own call budgets).
// For parallelism, load several domains.
//
// Time: a call's budget (Policy::timeout()) bounds the extension's time, measured exactly:
// the wall time of the call minus the time spent inside host services. Spinning and sleeping
// both count; a nested call the host makes from a host service counts towards the enclosing
// call too, and its own budget is cut to what the enclosing call has left. Every wait is against
// an absolute deadline, so wake-ups the extension causes (it can reach the doorbell words) never
// extend it. When a call fails, tearing the child down waits at most about a second for its exit
// status (a tracer can hold it back); the error is reported then in any case.
//
// Output: the child's stdout and stderr are pipes only the host reads (never the host's own
// descriptors); ward drains them on its own thread and delivers labelled, escaped, capped lines
// to the policy's sink (see policy.h and domain/output.h). Delivery is asynchronous: a line may
// reach the sink after the call that printed it returned, or after the Domain is destroyed.
//
// Failure: the first cause is recorded and never overwritten (a hang that ends in SIGKILL stays
// a hang). From then on every call, in flight or later, fails fast with that cause.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "ward/backend/backend.h"
#include "ward/process/channel.h"
#include "ward/process/doorbell.h"

namespace ward {

namespace detail {
struct DomainState;
}

class ProcessDomain final : public Domain {
 public:
  // Starts the child, installs the sandbox, loads the plugin and resolves the entry (the
  // Starter of the process backend). Errors: load_failed (missing file or symbol, setup
  // failure), crashed/violation/exited (the plugin died while loading, e.g. in a constructor),
  // hung (loading exceeded the load timeout).
  [[nodiscard]] static Result<std::unique_ptr<Domain>> start(Spec spec);
  // The process domain behind `d`, or null if another backend runs it.
  [[nodiscard]] static ProcessDomain* of(Domain& d) { return dynamic_cast<ProcessDomain*>(&d); }
  ~ProcessDomain() override;

  [[nodiscard]] pid_t pid() const;

  bool alive() const override;
  std::optional<Error> failure() const override;
  void kill() override;
  Result<bool> heartbeat(std::chrono::nanoseconds timeout) override;
  std::chrono::nanoseconds host_service_time() const override { return std::chrono::nanoseconds(service_time_ns()); }
  std::uint64_t frame_capacity() const override { return heap_off_ - data_off_; }
  std::uint64_t extension_base() const override { return mapped_at_; }
  Error record_failure(Error e) override { return fail_with(std::move(e)); }
  // Waits for another thread's call to finish, but Errc::misuse when that thread sits in host
  // services for longer than the policy's timeout meanwhile (see "Threads" above).
  Result<Call> begin(std::uint32_t fn) override;
  Result<std::vector<std::byte>> checkpoint(std::chrono::nanoseconds timeout) override;
  Result<void> restore(const std::vector<std::byte>& state, std::chrono::nanoseconds timeout) override;

 private:
  explicit ProcessDomain(Spec spec);
  Result<schema::Slot> invoke(Call& c, std::uint64_t frame_off) override;
  void end(Call& c) noexcept override;
  // Frames: [data_off_, heap_off_); sandbox memory above them, to the end of the arena.
  [[nodiscard]] MemoryView view() const { return {base_, data_off_, heap_off_}; }
  [[nodiscard]] Result<void> boot();
  [[nodiscard]] Result<int> make_arena();
  [[nodiscard]] Result<void> write_boot_area();
  [[nodiscard]] Result<void> spawn_child(const std::string& dir, int arena_fd);
  [[nodiscard]] Result<void> await_ready();
  [[nodiscard]] Error fail_with(Error e);              // records the first cause, kills the child
  [[nodiscard]] Error current_failure(std::string_view function, bool earlier) const;
  [[nodiscard]] Result<wire::Msg> wait_child(std::string_view function, std::uint64_t budget_ns,
                                             std::uint64_t handed_over);
  [[nodiscard]] Result<void> wait_for_channel(std::unique_lock<std::recursive_mutex>& lock, std::uint32_t fn);
  [[nodiscard]] std::uint64_t service_time_ns() const;
  // Runs the host service. `handed_back` comes in as the instant the host noticed the upcall and
  // goes out as the instant the service finished, just before the reply is rung (from then on
  // the time is the extension's again).
  [[nodiscard]] Result<void> serve_upcall(const wire::Msg& m, std::uint64_t& handed_back);
  // Sends `kind` (checkpoint, restore) to the idle child and checks its answer `want`.
  [[nodiscard]] Result<void> checkpoint_step(wire::MsgKind kind, wire::MsgKind want, std::chrono::nanoseconds timeout);

  std::shared_ptr<detail::DomainState> st_;
  std::uint64_t filter_off_ = 0;  // where the boot area keeps the seccomp filter
  std::byte* base_ = nullptr;
  std::uint64_t size_ = 0;
  std::uint64_t data_off_ = 0;
  std::uint64_t heap_off_ = 0;   // end of the frame stack, start of sandbox memory
  std::uint64_t mapped_at_ = 0;  // where the child mapped the arena (its word, see channel.h)
  std::uint64_t ckpt_off_ = 0, ckpt_size_ = 0;  // the checkpoint area (checkpoint_area.h)
  wire::Control* ctl_ = nullptr;
  std::uint32_t seen_ = 0;  // last to_host sequence consumed
  std::uint64_t top_ = 0;   // first free byte of the frame stack (host's view)
  wire::SpinGovernor spin_;  // guarded by mu_, like the channel
  std::recursive_mutex mu_;
  // Threads waiting for the channel sleep here and are woken when an outermost call ends (not a
  // timed lock: every wait is a short, plain condition wait, and sanitizers understand it).
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  std::atomic<unsigned> waiters_{0};
  // Time accounting (guarded by mu_): the extension time charged on this domain so far (every
  // wait for the child adds its wall time; host services add nothing), and the innermost
  // enclosing call's limit in the same units (a nested call cannot outlast its caller's budget).
  std::uint64_t ext_ns_ = 0;
  std::uint64_t ext_limit_ = ~0ull;
  unsigned depth_ = 0;          // calls in progress on the holder's thread (nesting)
  unsigned service_depth_ = 0;  // host services in progress on the holder's thread
  // Read by threads waiting for the channel (no lock): time the holder spent in host services.
  std::atomic<std::uint64_t> service_ns_{0};     // finished outermost services, summed
  std::atomic<std::uint64_t> service_since_{0};  // start of the one in progress, 0 if none
  std::atomic<std::uint64_t> service_label_{0};  // (table << 32 | fn) of that service
};

// The child's pid when `d` runs on the process backend; -1 otherwise.
[[nodiscard]] inline pid_t pid_of(Domain& d) {
  const ProcessDomain* p = ProcessDomain::of(d);
  return p ? p->pid() : -1;
}

}  // namespace ward
