// A self-mounting file system's view of its own mount. ward hides its mount from the file system
// until INIT is answered (launch.cc puts an empty tmpfs at the mount point in the file system's
// namespace: a stat there before INIT would wait for an INIT that the file system sends only
// once "mounted"). Some file systems then use their own mount: go-fuse (gocryptfs) opens a file
// on it right after INIT and fails to start when that file is missing. So once an instance
// is sent INIT (the first, or a restart's replay), ward attaches a clone of its mount over the
// tmpfs in the file system's namespace (show_mount_in). That clone holds the kernel's connection like any mount: when the user
// unmounts ward's own, the clone would keep the connection and ward alive, so ward watches its
// namespace's mount table (MountWatch) and detaches the clone when its own mount is gone
// (hide_mount_in).
//
// Threads. show_mount_in and hide_mount_in do their work on a detached thread, and show_mount_in
// waits for it only up to a bound: resolving a path on a FUSE mount may send the relay a request
// that the relay, on the caller's thread, must stay free to answer (resolving the mount point
// itself sends none, as far as Linux 6.x goes: its root is reached by crossing the mount). The thread owns duplicates of every
// descriptor it uses; it writes a failure, prefixed, to log_fd (when >= 0) and nothing else.
// MountWatch is used on the relay's thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "ward/core/error.h"

namespace ward::fuse::detail {

// Clones the mount at `mountpoint` in the caller's mount namespace and attaches the clone at the
// same path in the mount namespace of the process `pidfd` refers to. Waits up to `wait` for that
// to be done (false: not done yet, it goes on in the background) — the caller is about to let
// the file system run on, and a file system that looks at its mount at once must find it.
bool show_mount_in(int pidfd, const std::string& mountpoint, std::chrono::milliseconds wait, int log_fd,
                   const std::string& log_prefix);

// Detaches (MNT_DETACH) the top mount at `mountpoint` in the mount namespace of `pidfd`: the
// clone show_mount_in attached there. Call it only after show_mount_in.
void hide_mount_in(int pidfd, const std::string& mountpoint, int log_fd, const std::string& log_prefix);

// The mount table of the caller's namespace, watched for one mount. Not copyable.
class MountWatch {
 public:
  MountWatch() = default;
  MountWatch(const MountWatch&) = delete;
  MountWatch& operator=(const MountWatch&) = delete;
  ~MountWatch();

  // Finds the topmost mount at `mountpoint` whose type is `fstype` (its device is what is
  // watched) and opens /proc/self/mountinfo for poll. Errors: not found, /proc unreadable.
  Result<void> start(const std::string& mountpoint, const std::string& fstype);
  // For poll(2) with POLLPRI: readable when the namespace's mount table changed. -1 when not
  // started.
  int fd() const { return fd_; }
  // After poll reported a change: whether the watched mount is still in the namespace.
  bool still_mounted();

 private:
  int fd_ = -1;
  std::string dev_;  // "major:minor" as mountinfo writes it
};

}  // namespace ward::fuse::detail
