// Policy: what a domain's extension may do, built once by a Builder and immutable afterwards.
//
// The default is for a pure compute plugin: no files, no sockets, no new processes or threads,
// no executable memory after loading, writes only to stdout/stderr. Each option that loosens
// isolation starts with `unsafe_` so it stands out in review.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ward/error.h"

namespace ward {

class Policy {
 public:
  class Builder;
  [[nodiscard]] static Builder builder();
  // The defaults (same as builder().build()).
  Policy();

  std::chrono::nanoseconds timeout() const { return timeout_; }
  std::chrono::nanoseconds load_timeout() const { return load_timeout_; }
  std::chrono::nanoseconds spin() const { return spin_; }
  std::uint64_t memory() const { return memory_; }
  std::uint64_t cpu_seconds() const { return cpu_seconds_; }
  std::uint64_t open_files() const { return open_files_; }
  std::uint64_t arena_size() const { return arena_size_; }
  std::uint64_t handle_quota() const { return handles_; }
  unsigned max_nesting() const { return max_nesting_; }
  bool allows_file_open() const { return files_; }
  bool allows_sockets() const { return sockets_; }
  bool allows_process_creation() const { return processes_; }
  bool allows_threads() const { return threads_; }
  bool allows_executable_memory() const { return exec_memory_; }
  const std::vector<std::string>& extra_syscalls() const { return extra_; }
  // Logical protection domain: may the extension call host service `label` ("host_api::log")?
  // Without any grant in the policy, every declared service is granted.
  [[nodiscard]] bool grants(std::string_view label) const;
  [[nodiscard]] bool restricts_services() const { return restricted_; }

  // One line per setting, for logs and `--help` output.
  [[nodiscard]] std::string describe() const;

 private:
  friend class Builder;
  std::chrono::nanoseconds timeout_{std::chrono::seconds(5)};
  std::chrono::nanoseconds load_timeout_{std::chrono::seconds(10)};
  std::chrono::nanoseconds spin_{std::chrono::microseconds(50)};
  std::uint64_t memory_ = 512ull << 20;
  std::uint64_t cpu_seconds_ = 600;
  std::uint64_t open_files_ = 16;
  std::uint64_t arena_size_ = 4ull << 20;
  std::uint64_t handles_ = 1024;
  unsigned max_nesting_ = 32;
  bool files_ = false, sockets_ = false, processes_ = false, threads_ = false, exec_memory_ = false;
  std::vector<std::string> extra_;
  bool restricted_ = false;
  std::vector<std::string> grants_;  // "iface::fn" or "iface" (all of it)
};

class Policy::Builder {
 public:
  // Longest a single call may run inside the extension (time spent in host services excluded).
  Builder& timeout(std::chrono::nanoseconds t);
  // Longest loading may take (helper start, dlopen, constructors, entry).
  Builder& load_timeout(std::chrono::nanoseconds t);
  // How long a waiting side spins before sleeping on the futex; 0 sleeps at once.
  Builder& spin(std::chrono::nanoseconds t);
  // Address-space limit of the whole child (RLIMIT_AS), arena included.
  Builder& memory(std::uint64_t bytes);
  Builder& cpu_seconds(std::uint64_t s);
  Builder& open_files(std::uint64_t n);
  // Size of the shared arena holding every marshaled argument and result.
  Builder& arena_size(std::uint64_t bytes);
  // Most host objects the extension may hold handles to at once (exceeding it: Errc::limit).
  Builder& handles(std::uint64_t n);
  // Deepest nesting of calls into this domain on one host thread (host -> extension -> host
  // service -> extension -> ...), counting the outermost call as 1. Each level costs host stack
  // (the waiting call plus the host service's frames), so a recursion the extension drives must
  // end with an error before the host's stack does: the call that would exceed it fails with
  // Errc::limit. 1 .. 1024; default 32.
  Builder& max_nesting(unsigned depth);

  Builder& unsafe_allow_file_open();
  Builder& unsafe_allow_sockets();
  Builder& unsafe_allow_process_creation();
  Builder& unsafe_allow_threads();
  Builder& unsafe_allow_executable_memory();
  Builder& unsafe_allow_syscall(std::string name);

  // Logical protection domain: grant host service `label`, either one function
  // ("host_api::log") or a whole interface ("host_api"). Once any grant (or grant_none) is given,
  // the extension's service tables contain only what was granted; calling anything else is a
  // policy violation. ward::service<&host_api::log>() spells a label from the declaration.
  Builder& grant(std::string label);
  Builder& grant_none();

  // Validates the settings: unknown system call names, an arena too small to hold a frame, a
  // zero timeout, a memory limit smaller than the arena.
  [[nodiscard]] Result<Policy> build() const;

 private:
  Policy p_;
};

}  // namespace ward
