// The reaper: one long-lived thread per host process that starts every domain child and reaps it.
//
// Why one thread: PR_SET_PDEATHSIG fires when the *thread* that created the child exits, so
// children must be created by a thread that lives as long as the process. The same thread waits
// on every child's pidfd (epoll), so a death is noticed at once, not when someone next polls:
// it records the exit, bumps the domain's reply doorbell and wakes whoever waits on it.
//
// The same thread enforces the policy's CPU rate (Policy::Builder::cpu_rate): at the end of each
// window it reads the child's process CPU clock (all its threads) and ends a child that used more
// than its share. The host measures, so nothing the extension does in its own process (it shares
// it with the helper) can hide CPU time; and the pid the clock is read through cannot be recycled
// meanwhile, since only this thread reaps the child. Likewise the memory growth rate
// (Policy::Builder::memory_growth): the child's resident set, read from /proc/PID/statm through a
// descriptor opened while the pid is surely the child's, at the end of each window.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ward/process/channel.h"
#include "ward/core/error.h"

namespace ward::detail {

// Shared by the Domain and the reaper; outlives both through shared_ptr.
struct DomainState {
  // Arena mapping (owned here so the reaper can ring the doorbell after the Domain is gone).
  std::byte* base = nullptr;
  std::uint64_t size = 0;
  pid_t pid = -1;
  int pidfd = -1;
  std::atomic<bool> failed{false};  // a first cause is recorded: calls fail fast
  std::atomic<bool> reaped{false};
  std::atomic<bool> loaded{false};  // the child reported ready: its load-error exit code is void

  mutable std::mutex mu;
  std::condition_variable cv;  // notified when reaped
  std::optional<Error> cause;  // the first cause, never overwritten
  siginfo_t exit_info{};       // valid once reaped
  std::vector<std::vector<std::string>> service_names;  // per table, for violation reports
  bool exit_known = false;     // false if someone else reaped the child
  // The CPU rate: set before the spawn, read by the reaper only. 0 cores: not checked.
  double cpu_rate_cores = 0;
  std::uint64_t cpu_rate_window_ns = 0;
  // The memory growth rate, likewise. 0 bytes: not checked.
  std::uint64_t growth_bytes = 0;
  std::uint64_t growth_window_ns = 0;

  // Records `e` as the cause unless one is already recorded; returns the recorded cause.
  Error record(Error e);
  // Sends SIGKILL through the pidfd (never hits a recycled pid).
  void kill_child() const;
  // Waits until reaped or `timeout_ms` passes; true if reaped.
  bool wait_reaped(int timeout_ms);
  // Turns the reaped exit status into an Error; the child's own fault record only qualifies it.
  Error classify_exit() const;
  // The child's load-error text from the fault record, copied and escaped.
  std::string child_text() const;
  ~DomainState();
};

class Reaper {
 public:
  static Reaper& get();
  // Runs `spawn` on the reaper thread (it must return the child's pid or an error), opens a
  // pidfd for the child and starts watching it on behalf of `st`.
  [[nodiscard]] Result<void> spawn(const std::shared_ptr<DomainState>& st, std::function<Result<pid_t>()> spawn);

 private:
  Reaper();
  void loop();
  // Collects the child's exit status without blocking; false if a tracer still holds it.
  static bool try_reap(const std::shared_ptr<DomainState>& st);
  static void ring_host(DomainState& st);
  struct RateWatch;
  // Ends the child of `w` if it used more than its CPU share since the window began; starts the
  // next window. False if the clock cannot be read (the child is gone).
  static bool check_rate(RateWatch& w, std::uint64_t now_ns);
  struct GrowthWatch;
  // Ends the child of `w` if its resident memory grew by more than its allowance since the window
  // began; starts the next window (the first once the child has loaded). False if the child was
  // ended or cannot be read (it is gone).
  static bool check_growth(GrowthWatch& w, std::uint64_t now_ns);
  struct Impl;
  Impl* impl_;
};

}  // namespace ward::detail
