// Bounds on what one file-system instance may take of the host: tasks (a `pids` cgroup) and
// memory (a `memory` cgroup).
//
// Why. The file system runs as root in a PID namespace of its own, and a PID namespace bounds what
// it can see, not how much it can take: a fork bomb in it takes every PID the host has (RLIMIT_NPROC
// does not bind root), and a file system that allocates without end pushes the whole host into
// reclaim and swap before the kernel's OOM killer picks anyone. The cgroup controllers bound both;
// an instance over its memory bound is killed by the OOM killer inside its own cgroup, which ward
// sees as a crash and restarts (docs/fuse.md, "Sandbox").
//
// Contract. make() creates, for each bound asked for, a cgroup below ward's own in a hierarchy
// with that controller (cgroup v1, or cgroup v2 where ward's cgroup delegates the controller) and
// writes the bound. A bound that cannot be applied (no such hierarchy, not writable) is reported in
// missing() and the others still apply: the caller logs the missing ones and goes on. The instance
// joins them itself, before it forks anything: it writes "0" to each path of procs() (fixed here,
// so that the child need not allocate). The destructor removes the cgroups; the owner destroys the
// object once the instance is reaped (the cgroups are empty then: a PID namespace's init exits
// after every other task in it; a short bounded retry covers the kernel's last steps). Left behind
// only if ward itself is killed, until the next ward's make() (sweep_stale). One owner; movable;
// not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ward/core/error.h"

namespace ward::fuse::detail {

struct Bounds {
  std::uint64_t tasks = 0;    // processes and threads at once; 0: no bound
  std::uint64_t memory = 0;   // bytes (anonymous memory and page cache charged to it); 0: no bound
};

class ProcessLimit {
 public:
  ProcessLimit() = default;
  ProcessLimit(const ProcessLimit&) = delete;
  ProcessLimit& operator=(const ProcessLimit&) = delete;
  ProcessLimit(ProcessLimit&& o) noexcept;
  ProcessLimit& operator=(ProcessLimit&& o) noexcept;
  ~ProcessLimit();

  // The cgroups for `b`; `tag` names them: tag(n) for this process's n-th instance (sweep_stale
  // knows those names).
  static ProcessLimit make(const Bounds& b, const std::string& tag);
  static std::string tag(unsigned instance);
  // Removes the cgroups that wards no longer running left (SIGKILLed before they could): those
  // named for a pid that is gone, if empty. make() does it first. Best effort: nothing to report.
  static void sweep_stale();
  // cgroup.procs of each cgroup made (one per hierarchy); empty when none was.
  const std::vector<std::string>& procs() const { return procs_; }
  // The bounds asked for that could not be applied, each with why.
  const std::vector<Error>& missing() const { return missing_; }

 private:
  void remove();
  std::vector<std::string> dirs_, procs_;
  std::vector<Error> missing_;
};

}  // namespace ward::fuse::detail
