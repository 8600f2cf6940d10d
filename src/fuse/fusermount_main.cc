// ward-fusermount: what a self-mounting file system (libfuse2, or libfuse3 without `{}`) finds in
// place of fusermount/fusermount3 when `ward fuse` runs it (src/fuse/launch.h). libfuse runs
// `fusermount [-o OPTS] [--auto-unmount] -- MOUNTPOINT` with `_FUSE_COMMFD` naming a unix socket
// and expects the /dev/fuse fd of a fresh mount back over it (SCM_RIGHTS, one byte of data). The
// stand-in sends ward's socket end instead (descriptor WARD_FUSE_FD, inherited through libfuse),
// so what the file system "mounted" is ward's relay. Mount options go nowhere: the kernel's mount
// is ward's, with ward's options. `-u` (unmount) succeeds and does nothing: ward owns the mount.
// Exit codes: 0 done; 1 refused (not under ward fuse, bad arguments, another mount point).
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fuse/launch.h"

namespace {

int refuse(const std::string& why) {
  std::fprintf(stderr, "ward-fusermount: %s\n", why.c_str());
  return 1;
}

// A descriptor number from the environment; -1 unless it is all digits and an open socket.
int socket_from_env(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v || std::strlen(v) > 9 || std::strspn(v, "0123456789") != std::strlen(v)) return -1;
  int fd = std::atoi(v);
  struct stat st {};
  return ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? fd : -1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ward::fuse::detail;
  bool unmount = false;
  const char* mountpoint = nullptr;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      if (i + 2 != argc) return refuse("expected one mount point after --");
      mountpoint = argv[i + 1];
      break;
    }
    if (a == "-u") unmount = true;
    else if (a == "-q" || a == "-z" || a == "--auto-unmount") continue;
    else if (a == "-o" && i + 1 < argc) ++i;
    else if (a == "-V" || a == "--version") return std::puts("ward-fusermount (stands in for fusermount under ward fuse)") < 0;
    else if (!a.starts_with("-") && !mountpoint) mountpoint = argv[i];
    else return refuse("unexpected argument " + a);
  }
  const char* expected = std::getenv(kEnvMountpoint);
  int relay = socket_from_env(kEnvSocket);
  if (!expected || relay < 0)
    return refuse("stands in for fusermount only under `ward fuse` (" + std::string(kEnvSocket) +
                  " names no socket)");
  if (unmount) return 0;  // ward unmounts when the file system ends
  if (!mountpoint) return refuse("no mount point given");
  char real[PATH_MAX];
  if (!::realpath(mountpoint, real)) return refuse(std::string("mount point ") + mountpoint + ": " + std::strerror(errno));
  if (std::string(real) != expected)
    return refuse(std::string("the file system asked to mount ") + real + ", but ward fuse holds " +
                  expected + ": give the file system that path");
  int comm = socket_from_env("_FUSE_COMMFD");
  if (comm < 0) return refuse("_FUSE_COMMFD names no socket (not run by libfuse?)");

  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &relay, sizeof relay);
  ssize_t n;
  while ((n = ::sendmsg(comm, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {}
  if (n != 1) return refuse(std::string("sending the relay's socket to libfuse: ") + std::strerror(errno));
  return 0;
}
