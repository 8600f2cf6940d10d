// Starting and ending the file system's process; the contract is in launch.h.
#include "fuse/launch.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace ward::fuse::detail {
namespace {

constexpr int kSocketBuf = 4 << 20;  // > the relay's buffer: a SEQPACKET datagram must fit

std::string errno_text(const std::string& what, int err) { return what + ": " + std::strerror(err); }

}  // namespace

FsProcess& FsProcess::operator=(FsProcess&& o) noexcept {
  if (this == &o) return *this;
  kill_and_reap();
  close_fds();
  pid_ = std::exchange(o.pid_, -1);
  pidfd_ = std::exchange(o.pidfd_, -1);
  sock_ = std::exchange(o.sock_, -1);
  status_ = o.status_;
  return *this;
}

void FsProcess::close_fds() {
  for (int* fd : {&pidfd_, &sock_})
    if (*fd >= 0) ::close(*fd), *fd = -1;
}

void FsProcess::kill_and_reap() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {}
  status_ = st;
  pid_ = -1;
  if (pidfd_ >= 0) ::close(pidfd_), pidfd_ = -1;
}

void FsProcess::end(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  pollfd p{pidfd_, POLLIN, 0};
  int ms = static_cast<int>(grace.count());
  while (::poll(&p, 1, ms) < 0 && errno == EINTR) {}
  kill_and_reap();  // already exited: only reaps (the group may still hold helpers: killed)
}

Result<FsProcess> launch(const Options& o) {
  if (o.command.empty()) return fail(Errc::misuse, "no file-system command");
  FsProcess p;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return fail(Errc::load_failed, errno_text("socketpair", errno));
  p.sock_ = sv[0];
  int child_end = sv[1];
  for (int fd : sv) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &kSocketBuf, sizeof kSocketBuf);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kSocketBuf, sizeof kSocketBuf);
  }
  // A send to a file system that stopped reading must not block ward forever.
  timeval tv{};
  tv.tv_sec = o.request_timeout.count() / 1000;
  tv.tv_usec = (o.request_timeout.count() % 1000) * 1000;
  ::setsockopt(p.sock_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  auto argv_s = substitute(o.command, "/dev/fd/" + std::to_string(child_end));
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  int errpipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) {
    ::close(child_end);
    return fail(Errc::load_failed, errno_text("pipe2", errno));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(child_end), ::close(errpipe[0]), ::close(errpipe[1]);
    return fail(Errc::load_failed, errno_text("fork", e));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::fcntl(child_end, F_SETFD, 0);
    ::execvp(argv[0], argv.data());
    int e = errno;
    (void)!::write(errpipe[1], &e, sizeof e);
    ::_exit(127);
  }
  p.pid_ = pid;
  ::close(errpipe[1]);
  ::close(child_end);
  int e = 0;
  ssize_t n = ::read(errpipe[0], &e, sizeof e);
  ::close(errpipe[0]);
  if (n == sizeof e) return fail(Errc::load_failed, errno_text("cannot run " + o.command[0], e));
  p.pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (p.pidfd_ < 0) return fail(Errc::load_failed, errno_text("pidfd_open", errno));
  return p;
}

}  // namespace ward::fuse::detail
