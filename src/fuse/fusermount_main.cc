// ward-fusermount: what a self-mounting file system (libfuse2, or libfuse3 without `{}`) finds in
// place of fusermount/fusermount3 when `ward fuse` runs it (src/fuse/launch.h). libfuse runs
// `fusermount [-o OPTS] [--auto-unmount] -- MOUNTPOINT` with `_FUSE_COMMFD` naming a unix socket
// and expects the /dev/fuse fd of a fresh mount back over it (SCM_RIGHTS, one byte of data). The
// stand-in sends ward's socket end instead (descriptor WARD_FUSE_FD, inherited through libfuse),
// so what the file system "mounted" is ward's relay. Mount options go nowhere: the kernel's mount
// is ward's, with ward's options. `-u` (unmount) succeeds and does nothing: ward owns the mount.
// Some mount libraries run fusermount with an environment of their own (go-fuse, used by gocryptfs
// and others, passes `_FUSE_COMMFD` alone) and without ward's descriptor: then the stand-in looks
// up its ancestors for the process ward started (its initial environment names WARD_FUSE_FD) and
// takes that descriptor from it with pidfd_getfd. It is the file system's own process, in the file
// system's own namespaces, so nothing is reached that the file system could not reach itself.
// The environment is inherited, so WARD_FUSE_FD may also name a descriptor the library has put
// something else at since (rclone's bazil fuse passes its own socket as descriptor 3 and keeps
// the environment): the stand-in takes it only if it is a SEQPACKET socket (ward's; libfuse's is
// a stream) and not the library's `_FUSE_COMMFD`, and otherwise looks up its ancestors too.
// Exit codes: 0 done; 1 refused (not under ward fuse, bad arguments, another mount point).
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

#include "core/read_file.h"
#include "fuse/fd_passing.h"
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

// Whether `fd` can be ward's relay socket: SEQPACKET, and not the library's own socket `comm`.
bool relay_socket(int fd, int comm) {
  int type = 0;
  socklen_t len = sizeof type;
  return fd >= 0 && fd != comm && ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_SEQPACKET;
}

// The value of NAME in process PID's initial environment, or "" when it has none.
std::string environ_of(pid_t pid, std::string_view name) {
  const std::string all = ward::read_file("/proc/" + std::to_string(pid) + "/environ");
  const std::string key = std::string(name) + "=";
  for (std::size_t at = 0; at < all.size();) {
    std::size_t end = all.find('\0', at);
    if (end == std::string::npos) end = all.size();
    if (std::string_view(all).substr(at, end - at).starts_with(key)) return all.substr(at + key.size(), end - at - key.size());
    at = end + 1;
  }
  return "";
}

// Processes are walked by the numbers /proc shows, which are the host's when the file system runs
// unsandboxed (ward's PID namespace keeps the host's /proc then), and getppid()'s otherwise; so
// the walk starts at /proc/self and asks /proc for each parent.
pid_t parent_of(const std::string& proc_id) {
  const std::string stat = ward::read_file("/proc/" + proc_id + "/stat");
  // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so parse after the last ')'.
  const std::size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  char state = 0;
  int ppid = 0;
  return std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2 ? ppid : 0;
}

// PID (as /proc numbers it) in this process's own PID namespace, which pidfd_open expects: the
// last number of its NSpid line.
pid_t own_namespace_pid(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("NSpid:")) continue;
    const std::size_t last = line.find_last_of(" \t");
    return last == std::string::npos ? 0 : std::atoi(line.c_str() + last + 1);
  }
  return 0;
}

// The ancestor that ward started: its relay descriptor (taken from it) and the mount point it was
// told; relay -1 when no ancestor within a few generations has them.
struct Found {
  int relay = -1;
  std::string mountpoint;
};
Found from_ancestors(int comm) {
  constexpr int kGenerations = 16;  // a library's helper, a shell or two, a daemonizing fork
  pid_t pid = parent_of("self");
  for (int i = 0; i < kGenerations && pid > 0; ++i, pid = parent_of(std::to_string(pid))) {
    const std::string fd = environ_of(pid, ward::fuse::detail::kEnvSocket);
    const std::string mp = environ_of(pid, ward::fuse::detail::kEnvMountpoint);
    if (fd.empty() || mp.empty() || fd.size() > 9 || fd.find_first_not_of("0123456789") != std::string::npos) continue;
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, own_namespace_pid(pid), 0));
    if (pidfd < 0) continue;
    const int got = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, std::atoi(fd.c_str()), 0));
    ::close(pidfd);
    struct stat st {};
    if (got >= 0 && ::fstat(got, &st) == 0 && S_ISSOCK(st.st_mode) && relay_socket(got, comm)) return {got, mp};
    if (got >= 0) ::close(got);
  }
  return {};
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
  const char* env_expected = std::getenv(kEnvMountpoint);
  const int comm = socket_from_env("_FUSE_COMMFD");
  int relay = socket_from_env(kEnvSocket);
  std::string expected = env_expected ? env_expected : "";
  if (!env_expected || !relay_socket(relay, comm)) {
    Found f = from_ancestors(comm);
    relay = f.relay;
    expected = f.mountpoint;
  }
  if (expected.empty() || relay < 0)
    return refuse("stands in for fusermount only under `ward fuse` (" + std::string(kEnvSocket) +
                  " names no socket)");
  if (unmount) return 0;  // ward unmounts when the file system ends
  if (!mountpoint) return refuse("no mount point given");
  char real[PATH_MAX];
  if (!::realpath(mountpoint, real)) return refuse(std::string("mount point ") + mountpoint + ": " + std::strerror(errno));
  if (std::string(real) != expected)
    return refuse(std::string("the file system asked to mount ") + real + ", but ward fuse holds " +
                  expected + ": give the file system that path");
  if (comm < 0) return refuse("_FUSE_COMMFD names no socket (not run by libfuse?)");

  // The hand-off first (launch.h): ward shows the file system its mount, then sends INIT.
  const std::uint32_t handoff[4] = {kHandoffLen, 0, 0, 0};
  static_assert(sizeof handoff == kHandoffLen);
  if (::send(relay, handoff, sizeof handoff, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof handoff))
    return refuse(std::string("telling ward fuse of the hand-off: ") + std::strerror(errno));

  if (!send_fd(comm, relay)) return refuse(std::string("sending the relay's socket to libfuse: ") + std::strerror(errno));
  return 0;
}
