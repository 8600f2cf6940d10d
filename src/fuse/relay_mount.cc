// The FUSE relay: a self-mounting file system's mount(2), answered by ward. launch.cc's filter
// hands each mount(2) of such a file system to ward (a seccomp user notification) instead of
// refusing it. A FUSE mount of ward's mount point with `fd=N` is "done" by putting the file
// system's end of ward's socket at descriptor N in its process (SECCOMP_IOCTL_NOTIF_ADDFD, in
// place of the /dev/fuse it opened) and answering 0: the library then talks to ward as it would
// to the kernel. That is the hand-off (as ward-fusermount's for libraries that fall back to
// fusermount): the file system is shown its mount and sent INIT. Every other mount is refused
// with EPERM, as before. relay_impl.h has the class's contract.
//
// What the file system controls here and why it is harmless: the strings are read from its
// memory (it may change them meanwhile: they only choose between EPERM and the hand-off, and the
// hand-off gives it nothing but its own socket), and the descriptor number (any number it names
// is its own table's).
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

#include "fuse/relay_impl.h"

namespace ward::fuse::detail {

namespace {

constexpr std::size_t kMaxString = 4096;  // PATH_MAX; mount data is at most a page

// A NUL-terminated string at `addr` in process `pid`, read a page at a time (the string may end
// just before an unmapped page); nullopt when unreadable or longer than kMaxString.
std::optional<std::string> read_string(pid_t pid, std::uint64_t addr) {
  std::string out;
  while (out.size() < kMaxString) {
    char chunk[256];
    const std::uint64_t to_page = 4096 - (addr % 4096);
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(sizeof chunk, to_page));
    iovec local{chunk, want};
    iovec remote{reinterpret_cast<void*>(addr), want};
    const ssize_t n = ::process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n <= 0) return std::nullopt;
    const std::string_view got(chunk, static_cast<std::size_t>(n));
    if (auto nul = got.find('\0'); nul != std::string_view::npos) return out.append(got.substr(0, nul));
    out.append(got);
    addr += static_cast<std::uint64_t>(n);
  }
  return std::nullopt;
}

// The value of `fd=` in FUSE mount data ("fd=5,rootmode=40000,..."); -1 when absent or bad.
int fd_option(std::string_view data) {
  for (std::size_t at = 0; at <= data.size();) {
    std::size_t end = data.find(',', at);
    if (end == std::string_view::npos) end = data.size();
    const std::string_view opt = data.substr(at, end - at);
    if (opt.starts_with("fd=")) {
      int fd = -1;
      auto [p, ec] = std::from_chars(opt.data() + 3, opt.data() + opt.size(), fd);
      return ec == std::errc() && p == opt.data() + opt.size() && fd >= 0 ? fd : -1;
    }
    at = end + 1;
  }
  return -1;
}

// The thread group of thread `tid` (pidfd_open wants a process).
pid_t tgid_of(pid_t tid) {
  std::ifstream in("/proc/" + std::to_string(tid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("Tgid:")) return std::atoi(line.c_str() + 5);
  return -1;
}

}  // namespace

Result<void> Relay::mount_asked() {
  const int listener = fs_proc_.mount_requests();
  seccomp_notif req{};
  if (::ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) return {};  // the caller went meanwhile
  seccomp_notif_resp resp{};
  resp.id = req.id;
  resp.error = -EPERM;
  const std::string why = WARD_TRY(try_mount_handoff(req));
  if (why.empty()) resp.error = 0;
  else if (!why.starts_with("-")) log("the file system's mount(2) refused: " + why);
  // ENOENT: the caller was killed meanwhile; nothing to answer.
  (void)::ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
  if (why.empty()) return handed_off();
  return {};
}

// "" when the hand-off was made; else why not (a leading '-': not worth a log line).
Result<std::string> Relay::try_mount_handoff(const seccomp_notif& req) {
  if (req.data.nr != SYS_mount) return std::string("-not mount(2)");
  const pid_t pid = static_cast<pid_t>(req.pid);
  auto fstype = read_string(pid, req.data.args[2]);
  auto target = read_string(pid, req.data.args[1]);
  auto data = req.data.args[4] ? read_string(pid, req.data.args[4]) : std::optional<std::string>("");
  if (!fstype || !target || !data) return std::string("its arguments cannot be read");
  if (*fstype != "fuse" && *fstype != "fuseblk" && !fstype->starts_with("fuse."))
    return std::string("-not a FUSE mount (" + *fstype + ")");
  if (handed_) return std::string("a second FUSE mount by one instance");
  if (*target != mount_path_)
    return "it mounts " + *target + ", but ward fuse holds " + mount_path_ + ": give the file system that path";
  const int fd = fd_option(*data);
  if (fd < 0) return std::string("no fd= in its mount options");
  // The FS's end of ward's socket, from the caller itself (it inherited it at kFsSocketFd).
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, tgid_of(pid), 0));
  if (pidfd < 0) return std::string("-the caller is gone");
  const int end = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, kFsSocketFd, 0));
  ::close(pidfd);
  struct stat st {};
  if (end < 0 || ::fstat(end, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    if (end >= 0) ::close(end);
    return "its descriptor " + std::to_string(kFsSocketFd) + " is no longer ward's socket";
  }
  // Still the same call (its memory may be another process's by now if it was not).
  std::uint64_t id = req.id;
  seccomp_notif_addfd add{};
  add.id = req.id;
  add.flags = SECCOMP_ADDFD_FLAG_SETFD;
  add.srcfd = static_cast<std::uint32_t>(end);
  add.newfd = static_cast<std::uint32_t>(fd);
  const int listener = fs_proc_.mount_requests();
  const bool valid = ::ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
  const bool added = valid && ::ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add) >= 0;
  ::close(end);
  if (!valid) return std::string("-the caller is gone");
  if (!added) return std::string("ward's socket cannot be put at its descriptor ") + std::to_string(fd);
  return std::string();
}

std::optional<Relay::NamespaceId> Relay::pid_namespace_of(std::uint32_t pid) {
  struct stat st {};
  if (pid == 0 || ::stat(("/proc/" + std::to_string(pid) + "/ns/pid").c_str(), &st) != 0) return std::nullopt;
  return NamespaceId{st.st_dev, st.st_ino};
}

// The file system's own requests on its mount (go-fuse's, through the clone own_mount.h shows it)
// that ward has read: a thread waiting for one of them cannot die, not even of SIGKILL (the
// kernel waits for the answer of a request user space has read), so the PID namespace cannot end
// and reaping it would wait for ever. They are answered EIO before the instance is killed: their
// senders are about to die. Found by the sender's PID namespace (fuse_in_header.pid is in ward's).
void Relay::answer_own_requests() {
  if (!fs_proc_.running()) return;
  const auto ns = pid_namespace_of(fs_proc_.pid());
  if (!ns) return;
  for (auto it = inflight_.begin(); it != inflight_.end();) {
    const InFlight& r = it->second;
    const std::uint32_t pid = r.msg.size() >= sizeof(fuse_in_header) ? load<fuse_in_header>(r.msg.data()).pid : 0;
    if (!r.own && pid_namespace_of(pid) == ns) {
      answer(it->first, EIO);
      it = inflight_.erase(it);
    } else {
      ++it;
    }
  }
}

bool Relay::dying_fs_task(std::uint32_t pid) const {
  if (pid == 0 || !fs_ns_) return false;
  char path[64], buf[512];
  std::snprintf(path, sizeof path, "/proc/%u/stat", pid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  // "pid (comm) state ppid pgrp session tty_nr tpgid flags ...": comm may hold anything but the
  // last ')' ends it.
  const char* p = std::strrchr(buf, ')');
  unsigned long flags = 0;
  if (!p || std::sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1) return false;
  constexpr unsigned long kExiting = 0x4;  // PF_EXITING, include/linux/sched.h
  return (flags & kExiting) && pid_namespace_of(pid) == fs_ns_;
}

// Requests that reach /dev/fuse while the instance dies. A task that dies with a file open on
// ward's mount closes it on its way out, and the kernel sends FLUSH and waits for the answer
// whatever the signal (a forced request): unanswered, the namespace never ends and ward would wait
// for it for ever (seen with gocryptfs, whose go-fuse keeps a file of its own mount open).
void Relay::serve_dying(const std::optional<NamespaceId>& dying) {
  for (int i = 0; i < kBatch; ++i) {
    const ssize_t n = ::read(kfd_, buf_.data(), buf_.size());
    if (n < static_cast<ssize_t>(sizeof(fuse_in_header))) return;  // nothing queued, or unmounted: the loop sees it
    const auto in = load<fuse_in_header>(buf_.data());
    if (in.len != static_cast<std::size_t>(n)) return;
    const OpInfo* op = op_info(in.opcode);
    const bool no_reply = op && op->body == Body::none;  // FORGET, INTERRUPT, ...: nothing to answer
    if (!no_reply && dying && pid_namespace_of(in.pid) == dying) {
      ++stats_.requests;
      answer(in.unique, EIO);
      continue;
    }
    deferred_.emplace_back(buf_.data(), buf_.data() + n);
  }
}

}  // namespace ward::fuse::detail
