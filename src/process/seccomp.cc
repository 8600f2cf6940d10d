#include "process/seccomp.h"

#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <asm/ioctls.h>
#include <linux/audit.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <memory>

namespace ward::detail {
namespace {

struct Ctx {
  scmp_filter_ctx c;
  ~Ctx() { seccomp_release(c); }
};

// System calls a pure compute plugin (and the libc under it) needs after loading, allowed with
// any arguments. Anything that takes an argument worth checking is in compile_filter instead.
constexpr const char* kAlways[] = {
    "exit", "exit_group", "rt_sigreturn", "restart_syscall", "close", "fstat", "munmap", "mremap",
    "brk", "madvise", "sched_yield", "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres",
    "gettimeofday", "time", "getpid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getppid",
    "rt_sigprocmask", "rt_sigaction", "sigaltstack", "getrandom", "uname", "sched_getaffinity",
    "set_robust_list", "rseq", "getrlimit"};

constexpr const char* kFiles[] = {
    "open", "openat", "creat", "stat", "lstat", "newfstatat", "statx", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "getdents64", "fcntl", "read", "lseek", "pread64",
    "pwrite64", "readv", "write", "writev", "ftruncate", "fsync", "fdatasync", "mkdir", "mkdirat",
    "unlink", "unlinkat", "rename", "renameat", "renameat2", "getcwd", "chdir", "fchdir", "dup",
    "dup2", "dup3", "ioctl", "fadvise64", "flock", "statfs", "fstatfs"};

// Calls that name a path: what refuse_files answers with EACCES. Calls on descriptors are not
// here — with no file ever opened there is none to use them on.
constexpr const char* kPathCalls[] = {
    "open", "openat", "openat2", "creat", "stat", "lstat", "newfstatat", "statx", "access", "faccessat",
    "faccessat2", "readlink", "readlinkat", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename",
    "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "chmod", "fchmodat", "chown",
    "lchown", "fchownat", "truncate", "utimes", "utimensat", "statfs", "getcwd", "chdir", "mknod", "mknodat"};

constexpr const char* kSockets[] = {
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendto", "recvfrom",
    "sendmsg", "recvmsg", "shutdown", "getsockopt", "setsockopt", "getsockname", "getpeername",
    "poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "fcntl", "write", "writev", "read", "readv", "lseek"};

constexpr const char* kProcesses[] = {"fork", "vfork", "clone", "clone3", "execve", "execveat",
                                      "wait4", "waitid", "kill", "tgkill", "setsid", "setpgid"};

// Comparing an argument the kernel reads as a 32-bit int (a descriptor, a pid, a signal, a
// command) must look at those 32 bits only: a 64-bit comparison lets `SIGSYS | 1 << 32` differ
// from SIGSYS to the filter while the kernel sees SIGSYS. MASKED_EQ with a 32-bit mask is
// libseccomp's way to say "these 32 bits are equal".
constexpr scmp_datum_t kLow32 = 0xffffffffu;
scmp_arg_cmp eq32(unsigned arg, scmp_datum_t v) { return {arg, SCMP_CMP_MASKED_EQ, kLow32, v & kLow32}; }

int rule(scmp_filter_ctx c, const char* name, unsigned n = 0, const scmp_arg_cmp* args = nullptr,
         std::uint32_t action = SCMP_ACT_ALLOW) {
  const int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR) return 0;  // not on this architecture (e.g. "open" on arm64)
  return n ? seccomp_rule_add_array(c, action, nr, n, args) : seccomp_rule_add(c, action, nr, 0);
}

// Guards libseccomp cannot express: "allowed unless this 32-bit argument is V" is a negated
// comparison, and libseccomp lets an unconditional allow override conditional traps. Each guard
// traps (a violation) a call whose argument is the one value no extension may pass, whatever else
// its policy allows; they run before libseccomp's program, and other calls fall through.
// - SIGSYS: nothing may install a SIGSYS handler or send SIGSYS. The first would blind the
//   violation reporter, the second would let the extension fake a violation (death by SIGSYS is
//   how the host knows a filter trap happened).
// - TIOCSTI, TIOCLINUX: nothing may push input into a terminal (TIOCLINUX's paste). A domain that
//   may open files could open the user's own terminal (/dev/pts/N is the user's), and what it
//   pushes there the user's shell runs. dev.tty.legacy_tiocsti=0 refuses TIOCSTI, but not to
//   CAP_SYS_ADMIN, and it is 1 on many machines. (`ward fuse` refuses both to every file system
//   the same way: src/fuse/launch.cc.)
struct Guard {
  int nr;
  unsigned arg;  // which argument carries the value (an int or unsigned int to the kernel)
  std::uint32_t value;
};
constexpr Guard kGuards[] = {
    {__NR_rt_sigaction, 0, SIGSYS},     {__NR_kill, 1, SIGSYS},           {__NR_tkill, 1, SIGSYS},
    {__NR_tgkill, 2, SIGSYS},           {__NR_rt_sigqueueinfo, 1, SIGSYS}, {__NR_rt_tgsigqueueinfo, 2, SIGSYS},
    {__NR_pidfd_send_signal, 1, SIGSYS}, {__NR_ioctl, 1, TIOCSTI},         {__NR_ioctl, 1, TIOCLINUX}};

std::vector<sock_filter> guards() {
  constexpr std::size_t n = std::size(kGuards);
  const std::size_t trap = 2 + 4 * n + 1;  // index of RET TRAP; the next one starts libseccomp's program
  const std::size_t end = trap + 1;
  auto rel = [](std::size_t from, std::size_t to) { return static_cast<std::uint8_t>(to - (from + 1)); };
  std::vector<sock_filter> p;
  p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kNativeArch, 0, rel(1, end)));
  for (const auto& g : kGuards) {
    const std::size_t b = p.size();
    p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
    p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(g.nr), 0, 2));
    // The low half of the 64-bit argument (little endian): what the kernel reads as an int.
    p.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<std::uint32_t>(offsetof(seccomp_data, args) + 8 * g.arg)));
    // Not the value: on to the next guard (the same call may have another).
    p.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, g.value, rel(b + 3, trap), 0));
  }
  p.push_back(BPF_STMT(BPF_JMP | BPF_JA, 1));  // no guard matched: libseccomp's program
  p.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP));
  return p;
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
  auto add_action = [&](std::uint32_t action, const char* name, std::initializer_list<scmp_arg_cmp> args) {
    if (rc == 0) rc = rule(c, name, static_cast<unsigned>(args.size()), args.begin(), action);
  };
  // Unconditional rules win over conditional ones for the same call; track which are open.
  const bool files = p.allows_file_open(), sockets = p.allows_sockets();
  const bool procs = p.allows_process_creation();
  for (const char* s : kAlways) add(s);
  // Descriptors: 0 is /dev/null, 1 and 2 are the pipes of the domain's output channel. Reading
  // anything else (the host's terminal, if a descriptor ever leaked) or seeking anything is a
  // violation, unless files or sockets are allowed.
  if (!files && !sockets) {
    add("read", {eq32(0, 0)});
    for (int fd : {1, 2}) {
      add("write", {eq32(0, static_cast<scmp_datum_t>(fd))});
      add("writev", {eq32(0, static_cast<scmp_datum_t>(fd))});
    }
  }
  if (!files) {
    // stdio's first use asks whether stdout is a terminal.
    for (int fd : {1, 2}) add("ioctl", {eq32(0, static_cast<scmp_datum_t>(fd)), eq32(1, TCGETS)});
    // glibc's fstat() is newfstatat(fd, "", buf, AT_EMPTY_PATH), but a non-empty path is still
    // looked up, and the filter cannot read the path: fail it without a lookup (stdio copes with
    // a failed fstat). Without AT_EMPTY_PATH it is a path lookup: a violation (no rule).
    add_action(SCMP_ACT_ERRNO(EACCES), "newfstatat", {SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH)});
  }
  if (!files && p.refuses_files())
    for (const char* s : kPathCalls)
      if (rc == 0) rc = rule(c, s, 0, nullptr, SCMP_ACT_ERRNO(EACCES));
  // Memory: never executable after loading unless asked for (prot is an unsigned long).
  if (p.allows_executable_memory()) {
    add("mmap");
    add("mprotect");
  } else {
    add("mmap", {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
    add("mprotect", {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)});
  }
  // Futexes: waiting and waking only (any flags). The PI and requeue operations act on words the
  // extension can point at the host's doorbells; the host copes (its waits have deadlines), but
  // there is no reason to offer them.
  for (int op : {FUTEX_WAIT, FUTEX_WAKE, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET})
    add("futex", {SCMP_A1(SCMP_CMP_MASKED_EQ, kLow32 & ~scmp_datum_t{FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME},
                          static_cast<scmp_datum_t>(op))});
  // membarrier: the process-private commands (liburcu and the like); not the global one, which
  // makes every CPU of the machine synchronise.
  for (int cmd : {MEMBARRIER_CMD_QUERY, MEMBARRIER_CMD_PRIVATE_EXPEDITED, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED})
    add("membarrier", {eq32(0, static_cast<scmp_datum_t>(cmd))});
  // Signals only to itself (the guards above forbid SIGSYS on top).
  if (!procs) {
    add("tgkill", {eq32(0, static_cast<scmp_datum_t>(child))});
    add("kill", {eq32(0, static_cast<scmp_datum_t>(child))});
  }
  add("prlimit64", {eq32(0, 0), SCMP_A2(SCMP_CMP_EQ, 0)});  // read own limits only (new_rlim == NULL)
  add("prctl", {eq32(0, PR_GET_SECCOMP)});
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
  std::vector<sock_filter> prog = guards();
  const std::size_t guards = prog.size();
  if (rc == 0 && len > 0 && len % static_cast<off_t>(sizeof(sock_filter)) == 0) {
    prog.resize(guards + static_cast<std::size_t>(len) / sizeof(sock_filter));
    if (pread(fd, prog.data() + guards, static_cast<std::size_t>(len), 0) != len) prog.resize(guards);
  }
  ::close(fd);
  if (prog.size() == guards) return fail(Errc::load_failed, "could not export the seccomp filter");
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
