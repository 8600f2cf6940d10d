// Starting and ending the file system's process for the FUSE relay (src/fuse/relay.cc).
//
// Contract. launch() starts `options.command` with every `{}` replaced by `/dev/fd/N`, N being the
// child's end of a fresh SOCK_SEQPACKET socket pair; ward keeps the other end (`sock`), with a send
// timeout of `request_timeout` so a file system that stops reading cannot block ward. The child
// runs in its own process group (a terminal's ^C reaches ward, which unmounts first), dies with
// ward (PR_SET_PDEATHSIG), has an empty signal mask, and inherits no other descriptor of ward's
// (everything ward opens is O_CLOEXEC). A command that cannot be executed is an error naming it.
//
// FsProcess owns the pid, a pidfd (readable once the child exited) and ward's socket end; its
// destructor kills the process group and reaps it. Not thread-safe; one owner (the relay thread).
#pragma once

#include <sys/types.h>

#include <chrono>

#include "ward/core/error.h"
#include "ward/fuse/relay.h"

namespace ward::fuse::detail {

class FsProcess {
 public:
  FsProcess() = default;
  FsProcess(const FsProcess&) = delete;
  FsProcess& operator=(const FsProcess&) = delete;
  FsProcess(FsProcess&& o) noexcept { *this = std::move(o); }
  FsProcess& operator=(FsProcess&& o) noexcept;
  ~FsProcess() { kill_and_reap(); close_fds(); }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_; }  // -1 when not running
  int sock() const { return sock_; }    // ward's end of the socket pair; -1 when none
  // The wait status of the last process reaped (valid after kill_and_reap / end).
  int status() const { return status_; }

  // SIGKILL to the process group, then waits for it. No-op when not running.
  void kill_and_reap();
  // SIGTERM, then SIGKILL after `grace` if it has not exited; reaps it.
  void end(std::chrono::milliseconds grace);

 private:
  friend Result<FsProcess> launch(const Options& options);
  void close_fds();
  pid_t pid_ = -1;
  int pidfd_ = -1, sock_ = -1, status_ = 0;
};

[[nodiscard]] Result<FsProcess> launch(const Options& options);

}  // namespace ward::fuse::detail
