#include "domain/seccomp.h"

#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <asm/ioctls.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace ward::detail {
namespace {

struct Ctx {
  scmp_filter_ctx c;
  ~Ctx() { seccomp_release(c); }
};

// System calls a pure compute plugin (and the libc under it) needs after loading.
constexpr const char* kAlways[] = {
    "exit", "exit_group", "rt_sigreturn", "restart_syscall", "read", "close", "fstat", "lseek",
    "munmap", "mremap", "brk", "madvise", "futex", "sched_yield", "nanosleep", "clock_nanosleep",
    "clock_gettime", "clock_getres", "gettimeofday", "time", "getpid", "gettid", "getuid", "geteuid",
    "getgid", "getegid", "getppid", "rt_sigprocmask", "sigaltstack", "getrandom", "uname",
    "sched_getaffinity", "set_robust_list", "rseq", "membarrier", "getrlimit"};

constexpr const char* kFiles[] = {
    "open", "openat", "creat", "stat", "lstat", "newfstatat", "statx", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "getdents64", "fcntl", "pread64", "pwrite64", "readv",
    "write", "writev", "ftruncate", "fsync", "fdatasync", "mkdir", "mkdirat", "unlink", "unlinkat",
    "rename", "renameat", "renameat2", "getcwd", "chdir", "fchdir", "dup", "dup2", "dup3", "ioctl",
    "fadvise64", "flock", "statfs", "fstatfs"};

constexpr const char* kSockets[] = {
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendto", "recvfrom",
    "sendmsg", "recvmsg", "shutdown", "getsockopt", "setsockopt", "getsockname", "getpeername",
    "poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "fcntl", "write", "writev", "read", "readv"};

constexpr const char* kProcesses[] = {"fork", "vfork", "clone", "clone3", "execve", "execveat",
                                      "wait4", "waitid", "kill", "tgkill", "setsid", "setpgid"};

int rule(scmp_filter_ctx c, const char* name, unsigned n = 0, const scmp_arg_cmp* args = nullptr) {
  const int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return 0;  // not on this architecture (e.g. "open" on arm64)
  return n ? seccomp_rule_add_array(c, SCMP_ACT_ALLOW, nr, n, args) : seccomp_rule_add(c, SCMP_ACT_ALLOW, nr, 0);
}

}  // namespace

Result<std::vector<sock_filter>> compile_filter(const Policy& p, pid_t child) {
  Ctx ctx{seccomp_init(SCMP_ACT_TRAP)};
  if (!ctx.c) return fail(Errc::load_failed, "seccomp_init failed");
  scmp_filter_ctx c = ctx.c;
  int rc = 0;
  auto add = [&](const char* name, std::initializer_list<scmp_arg_cmp> args = {}) {
    if (rc == 0) rc = rule(c, name, static_cast<unsigned>(args.size()), args.size() ? args.begin() : nullptr);
  };
  // Unconditional rules win over conditional ones for the same call; track which are open.
  const bool files = p.allows_file_open(), sockets = p.allows_sockets();
  const bool procs = p.allows_process_creation();
  for (const char* s : kAlways) add(s);
  // Output goes to stdout and stderr only, unless files or sockets are allowed.
  if (!files && !sockets) {
    for (int fd : {1, 2}) {
      add("write", {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(fd))});
      add("writev", {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(fd))});
    }
  }
  if (!files) {
    // stdio's first use asks whether stdout is a terminal and stats it by descriptor.
    for (int fd : {1, 2}) add("ioctl", {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(fd)), SCMP_A1(SCMP_CMP_EQ, TCGETS)});
    add("newfstatat", {SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH)});
  }
  // Memory: never executable after loading unless asked for.
  if (p.allows_executable_memory()) {
    add("mmap");
    add("mprotect");
  } else {
    add("mmap", {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
    add("mprotect", {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
  }
  // Signals: handlers for anything but SIGSYS (the violation reporter); signals only to itself.
  add("rt_sigaction", {SCMP_A0(SCMP_CMP_NE, SIGSYS)});
  if (!procs) {
    add("tgkill", {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(child))});
    add("kill", {SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(child))});
  }
  add("prlimit64", {SCMP_A0(SCMP_CMP_EQ, 0), SCMP_A2(SCMP_CMP_EQ, 0)});  // read own limits only
  add("prctl", {SCMP_A0(SCMP_CMP_EQ, PR_GET_SECCOMP)});
  if (files)
    for (const char* s : kFiles) add(s);
  if (sockets)
    for (const char* s : kSockets) add(s);
  if (procs)
    for (const char* s : kProcesses) add(s);
  if (p.allows_threads() && !procs) {
    add("clone", {SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD)});
    // clone3 passes its flags in memory a filter cannot read: make glibc fall back to clone.
    if (rc == 0) rc = seccomp_rule_add(c, SCMP_ACT_ERRNO(ENOSYS), seccomp_syscall_resolve_name("clone3"), 0);
  }
  for (const auto& s : p.extra_syscalls()) add(s.c_str());
  if (rc != 0) return fail(Errc::load_failed, std::string("seccomp rule: ") + std::strerror(-rc));

  // libseccomp 2.5 exports only to a descriptor; go through a memfd.
  const int fd = memfd_create("ward-bpf", MFD_CLOEXEC);
  if (fd < 0) return fail(Errc::load_failed, std::string("memfd_create: ") + std::strerror(errno));
  rc = seccomp_export_bpf(c, fd);
  const off_t len = lseek(fd, 0, SEEK_END);
  std::vector<sock_filter> prog;
  if (rc == 0 && len > 0 && len % static_cast<off_t>(sizeof(sock_filter)) == 0) {
    prog.resize(static_cast<std::size_t>(len) / sizeof(sock_filter));
    if (pread(fd, prog.data(), static_cast<std::size_t>(len), 0) != len) prog.clear();
  }
  ::close(fd);
  if (prog.empty()) return fail(Errc::load_failed, "could not export the seccomp filter");
  return prog;
}

std::string syscall_name(int nr) {
  char* s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  if (!s) return "syscall " + std::to_string(nr);
  std::string out = s;
  std::free(s);
  return out;
}

}  // namespace ward::detail
