// Starting and ending the file system's process for the FUSE relay (src/fuse/relay.cc).
//
// Contract. launch() starts `options.command` and gives it ward's end of the relay: one end of a
// fresh SOCK_SEQPACKET socket pair, always at descriptor 3 in the file system. ward keeps the other
// end (`sock`), with a send timeout of `request_timeout` so a file system that stops reading cannot
// block ward. Two ways to hand it over, chosen by the command line (docs/fuse.md, "libfuse2 and
// daemonizing file systems"):
//   - `{}` in the command: each `{}` becomes `/dev/fd/3` (libfuse3 takes that as a mounted fd);
//   - no `{}`: the file system mounts itself. It runs in a private mount namespace where the mount
//     point is an empty tmpfs (not ward's mount: a stat on that before INIT would wait for INIT),
//     mount(2) fails with EPERM and umount2(2) pretends to succeed (a seccomp filter), and every
//     fusermount/fusermount3 is `ward-fusermount`, which hands libfuse the socket over
//     `_FUSE_COMMFD` as the real fusermount hands it a /dev/fuse fd. The command must name the
//     mount point itself (the stand-in refuses any other path).
// Either way the file system runs in its own PID namespace under a small init of ward's (a fork of
// ward, not an exec): the init reaps everything, forwards SIGTERM to all, and exits only when no
// process of the file system is left, so a file system that daemonizes (forks, setsid, the first
// process exits 0) is followed, not mistaken for one that exited. SIGKILL to the init (or ward's
// death: PR_SET_PDEATHSIG) kills every process in the namespace; setsid cannot escape it.
// With options.sandbox (the default) both launches also run in a private mount namespace whose
// root is the minimal one of src/fuse/sandbox.h (the self-mounting pieces above are built inside
// it), with mount(2) refused by the same filter and a few capabilities dropped from the bounding
// set (docs/fuse.md, "Sandbox"); the binary is the one the host's PATH names.
// Its stdout and stderr are `output` (FsOutput's pipe, fs_output.h), its stdin `options.fs_input`
// (never ward's); in the sandbox its /dev/log is `syslog`, an unbound datagram socket the child
// binds there (FsOutput::new_syslog; -1: none; unsandboxed it has the host's /dev/log). The file system has an empty signal mask and inherits no other descriptor of
// ward's. A command that cannot be executed, or a namespace that cannot be set up, is an error
// naming it.
//
// FsProcess owns the init's pid, a pidfd (readable once every process of the file system is gone),
// ward's socket end (POLLHUP once every holder of the other end closed it) and the pipe on which
// the init reports how the file system ended; its destructor kills the namespace and reaps it. Not
// thread-safe; one owner (the relay thread). launch() is safe to call from a multithreaded host:
// everything the child processes use is prepared before the fork (no allocation after it).
#pragma once

#include <cstdint>

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fuse/process_limit.h"
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
  pid_t pid() const { return pid_; }    // the namespace's init, as ward sees it
  int pidfd() const { return pidfd_; }  // -1 when not running; readable when the FS is all gone
  int sock() const { return sock_; }    // ward's end of the socket pair; -1 when none
  // A self-mounting FS's mount(2) calls, as a seccomp notification listener (relay's
  // mount_asked answers them); -1 when the FS does not mount itself.
  int mount_requests() const { return mount_fd_; }
  // How the file system ended, as a wait status (valid after kill_and_reap / end): the first of
  // its processes that failed (a non-zero exit or a signal), else 0; SIGKILL when ward killed it
  // before it ended by itself.
  int status() const { return status_; }

  // SIGKILL to the namespace, then waits for it. No-op when not running. When every holder of
  // the socket already closed it (the FS is ending by itself), it first gives the init a short,
  // fixed time to see the exits, so that status() says how the FS ended rather than "killed".
  // While it waits, each time `readable` (ward's /dev/fuse) has something it calls `meanwhile`:
  // a task of the FS that dies with a file open on ward's mount sends FLUSH as its files close,
  // and waits for the answer even under SIGKILL, so the namespace ends only once ward answers.
  void kill_and_reap(const std::function<void()>& meanwhile = {}, int readable = -1);
  // Waits up to `grace` for the file system to end by itself (the caller has shut its socket
  // down), then SIGTERM to every process of it and SIGKILL 3 s later; reaps it. Calls `meanwhile`
  // as kill_and_reap does, also while it waits.
  void end(std::chrono::milliseconds grace, const std::function<void()>& meanwhile = {}, int readable = -1);

 private:
  // Waits until the init is gone or `until` passes (nullopt: no deadline), calling `meanwhile`
  // each time `readable` has something. Once `readable` reports an error or hang-up (the mount is
  // gone: nothing is left to serve) it waits for the init alone: a file system writes what it
  // holds when its loop ends (fuse-zip its archive, s3backer its cache), and that is what the
  // grace is for.
  void wait_serving(std::optional<std::chrono::steady_clock::time_point> until,
                    const std::function<void()>& meanwhile, int readable);
  friend Result<FsProcess> launch(const Options& options, int output, int syslog);
  void close_fds();
  pid_t pid_ = -1;
  int pidfd_ = -1, sock_ = -1, status_fd_ = -1, mount_fd_ = -1, status_ = 0;
  ProcessLimit limit_;  // removed by kill_and_reap, once the instance is gone
};

// Whether `command` mounts itself (no `{}` in it): see the contract above.
[[nodiscard]] bool mounts_itself(const std::vector<std::string>& command);

[[nodiscard]] Result<FsProcess> launch(const Options& options, int output, int syslog);

// The file system's environment from ward's `env` (NAME=value strings): GLIBC_TUNABLES led by the
// malloc settings 128 KiB READ replies need (launch.cc: kMallocTunables; the user's own tunables
// follow and so win), and with `user` known to the user database its HOME, USER and LOGNAME.
[[nodiscard]] std::vector<std::string> fs_environment(std::vector<std::string> env, const std::optional<User>& user);

// The environment variables through which ward-fusermount (src/fuse/fusermount_main.cc) learns
// ward's socket and the mount point it may hand it for.
inline constexpr const char* kEnvSocket = "WARD_FUSE_FD";
inline constexpr int kFsSocketFd = 3;  // where the FS finds its end of ward's socket (kEnvSocket)
inline constexpr const char* kEnvMountpoint = "WARD_FUSE_MOUNTPOINT";
// The stand-in's hand-off: a bare fuse_out_header (len 16, error 0, unique 0, which no reply or
// notification can be) that ward-fusermount sends on ward's socket just before it hands the
// socket to the file system. ward holds a self-mounting instance's INIT until it arrives
// (docs/fuse.md, "The file system's own mount").
inline constexpr std::uint32_t kHandoffLen = 16;
// Overrides where ward finds ward-fusermount (default: beside the running executable).
inline constexpr const char* kEnvStandIn = "WARD_FUSERMOUNT";

}  // namespace ward::fuse::detail
