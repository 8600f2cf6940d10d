// Runs ward-fsconform's checks (check.h) inside a directory, each in a child process with a
// deadline, and prints one line per check and a summary.
//
// Contract: the runner itself never touches the file system under test: every call that could
// block on it (making the work directory, each check, each cleanup) happens in a child process
// in its own process group, and the parent waits for it with a deadline, after which it kills
// the group. A check that hangs is a failure ("no answer within N s"), never a hung suite. A child
// that cannot be killed (stuck in the kernel) is abandoned after a bounded wait and reported.
// Single-threaded; writes to `out` only.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "fuse/conform/check.h"
#include "ward/core/error.h"

namespace ward::conform {

struct Options {
  std::string dir;                  // where the work directory .ward-fsconform-PID is made
  std::vector<std::string> only;    // patterns (matches()); empty: every check
  std::chrono::seconds timeout{60};  // per check, and per setup or cleanup step
  bool list = false;
};

struct Tally {
  int passed = 0, failed = 0, skipped = 0;
};

// Every check, in table order.
std::vector<const Check*> all_checks();
// True when `name` matches `pattern`: a shell glob (fnmatch), or, with no glob characters, the
// name itself or a group ("rename" matches "rename.file").
bool matches(const std::string& pattern, const std::string& name);
// The checks `only` selects (all when empty), in table order.
std::vector<const Check*> select(const std::vector<std::string>& only);

// Runs `checks` in a fresh work directory under opts.dir and prints to `out`:
//   pass open.excl
//   FAIL rename.self: rename(f, g): EXDEV, want success
//   skip xattr.user: user extended attributes are not supported (ENOTSUP)
//   N passed, M failed, K skipped
// An error (misuse) when opts.dir cannot hold a work directory: no check ran.
Result<Tally> run(const Options& opts, const std::vector<const Check*>& checks, std::FILE* out);

}  // namespace ward::conform
