// A self-mounting file system's view of its own mount: the clone attached in its namespace, and
// the watch that detaches it again (own_mount.h has the contract).
#include "fuse/own_mount.h"

#include "fuse/mountinfo.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>
#include <memory>
#include <thread>
#include <vector>

namespace ward::fuse::detail {

namespace {

void report(int log_fd, const std::string& prefix, const std::string& what, int err) {
  if (log_fd < 0) return;
  const std::string line = prefix + what + ": " + std::strerror(err) + "\n";
  (void)!::write(log_fd, line.data(), line.size());
}

// Runs fn on a detached thread that has its own root/cwd (unshare(CLONE_FS): setns into a mount
// namespace is refused to a thread sharing them) and owns `pidfd_copy`, closed when it is done.
template <typename Fn>
void in_thread(int pidfd, Fn fn) {
  const int copy = ::fcntl(pidfd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return;
  std::thread([copy, fn = std::move(fn)] {
    if (::unshare(CLONE_FS) == 0) fn(copy);
    ::close(copy);
  }).detach();
}

}  // namespace

bool show_mount_in(int pidfd, const std::string& mountpoint, std::chrono::milliseconds wait, int log_fd,
                   const std::string& log_prefix) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> shown = done->get_future();
  in_thread(pidfd, [mountpoint, log_fd, log_prefix, done](int ns) {
    const int tree = static_cast<int>(
        ::syscall(SYS_open_tree, AT_FDCWD, mountpoint.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
    if (tree < 0) {
      report(log_fd, log_prefix, "cannot clone ward's mount to show it to the file system", errno);
    } else if (::setns(ns, CLONE_NEWNS) != 0) {
      report(log_fd, log_prefix, "cannot enter the file system's mount namespace", errno);
    } else if (::syscall(SYS_move_mount, tree, "", AT_FDCWD, mountpoint.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      report(log_fd, log_prefix, "cannot show ward's mount in the file system's namespace", errno);
    }
    if (tree >= 0) ::close(tree);
    done->set_value();
  });
  return shown.wait_for(wait) == std::future_status::ready;
}

void hide_mount_in(int pidfd, const std::string& mountpoint, int log_fd, const std::string& log_prefix) {
  in_thread(pidfd, [mountpoint, log_fd, log_prefix](int ns) {
    if (::setns(ns, CLONE_NEWNS) != 0) return report(log_fd, log_prefix, "cannot enter the file system's mount namespace", errno);
    // The top of the mount point's stack there is the clone: the file system cannot mount
    // (launch.cc's filter), and nothing else attaches there. Had the clone failed to attach, this
    // detaches the tmpfs that may cover what lies under it (sandbox.h, cover_mountpoint) from a
    // file system that is ending anyway, or finds nothing mounted (EINVAL). (The namespace's own
    // mount table is not readable from this thread: its /proc may belong to the file system's PID
    // namespace, where ward's thread has no pid.)
    if (::umount2(mountpoint.c_str(), MNT_DETACH) != 0 && errno != EINVAL)
      report(log_fd, log_prefix, "cannot detach ward's mount from the file system's namespace", errno);
  });
}

MountWatch::~MountWatch() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> MountWatch::start(const std::string& mountpoint, const std::string& fstype) {
  for (const MountInfo& m : read_mountinfo())
    if (m.mountpoint == mountpoint && m.fstype == fstype) dev_ = m.dev;  // the last is the topmost
  if (dev_.empty()) return fail(Errc::misuse, "no " + fstype + " mount at " + mountpoint + " in /proc/self/mountinfo");
  fd_ = ::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) return fail(Errc::misuse, std::string("open /proc/self/mountinfo: ") + std::strerror(errno));
  return {};
}

bool MountWatch::still_mounted() {
  // poll itself re-arms POLLPRI (the kernel records the table's event count when it reports).
  for (const MountInfo& m : read_mountinfo())
    if (m.dev == dev_) return true;
  return false;
}

}  // namespace ward::fuse::detail
