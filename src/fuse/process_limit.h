// A bound on how many processes and threads one file-system instance may have: a `pids` cgroup.
//
// Why. The file system runs as root in a PID namespace of its own, and a PID namespace bounds what
// it can see, not how many tasks it can make: a fork bomb in it takes every PID the host has, and
// RLIMIT_NPROC does not bind root. The pids controller does (docs/fuse.md, "Sandbox").
//
// Contract. make() creates a cgroup below ward's own in the pids hierarchy (cgroup v1 `pids`, or
// cgroup v2 where ward's cgroup delegates `pids` to children) and sets pids.max; it fails, in
// words, where there is no such hierarchy or ward may not write it (the caller logs that and goes
// on unbounded). The instance joins it itself, before it forks anything: it writes "0" to procs()
// (a path fixed here, so that the child need not allocate). The destructor removes the cgroup; its
// owner destroys it once the instance is reaped (empty then: a PID namespace's init exits after
// every other task in it; a short bounded retry covers the kernel's last steps). Left behind only
// if ward itself is killed, until the next ward's make() (sweep_stale). One owner; movable; not
// thread-safe.
#pragma once

#include <string>

#include "ward/core/error.h"

namespace ward::fuse::detail {

class ProcessLimit {
 public:
  ProcessLimit() = default;
  ProcessLimit(const ProcessLimit&) = delete;
  ProcessLimit& operator=(const ProcessLimit&) = delete;
  ProcessLimit(ProcessLimit&& o) noexcept;
  ProcessLimit& operator=(ProcessLimit&& o) noexcept;
  ~ProcessLimit();

  // `max` tasks (processes and threads) at most; `tag` names the cgroup: tag(n) for this
  // process's n-th instance (sweep_stale knows those names).
  [[nodiscard]] static Result<ProcessLimit> make(unsigned max, const std::string& tag);
  static std::string tag(unsigned instance);
  // Removes the cgroups that wards no longer running left (SIGKILLed before they could): those
  // named for a pid that is gone, if empty. make() does it first. Best effort: nothing to report.
  static void sweep_stale();
  // cgroup.procs of the cgroup; empty when none was made.
  const std::string& procs() const { return procs_; }

 private:
  void remove();
  std::string dir_, procs_;
};

}  // namespace ward::fuse::detail
