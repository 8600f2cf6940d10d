// Starting and ending the file system's process; the contract is in launch.h, the why in
// docs/fuse.md ("libfuse2 and daemonizing file systems").
#include "fuse/launch.h"

#include "core/readable.h"
#include "core/unique_fd.h"
#include "fuse/fd_passing.h"
#include "fuse/mountinfo.h"
#include "fuse/sandbox.h"
#include "process/seccomp.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cctype>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern char** environ;

namespace ward::fuse::detail {
namespace {

using namespace std::chrono_literals;

constexpr int kSocketBuf = 4 << 20;  // > the relay's buffer: a SEQPACKET datagram must fit
// Descriptors in the namespace's init: the file system's socket end (the FS keeps this number),
// where setup errors go (closed on the FS's exec: EOF = it runs), where the final status goes.
constexpr int kFsFd = kFsSocketFd, kErrFd = 4, kStatusFd = 5;
constexpr int kSyslogFd = 6;  // until the sandbox has bound it (sandbox.h: SandboxOp::socket)
constexpr std::size_t kInitStack = 256 << 10;
// How long kill_and_reap waits for an init whose file system already closed every socket end, so
// that the status it reports is the FS's own. Fixed: nothing the FS does can lengthen it.
constexpr auto kSettle = 500ms;
// How long end() waits between SIGTERM and SIGKILL, once the file system did not end by itself.
constexpr auto kTermGrace = 3000ms;

// What a self-mounting file system execs to mount: libfuse2 FUSERMOUNT_DIR "/fusermount" (Debian:
// /bin), then `fusermount` on PATH; libfuse3 the same with `fusermount3`; and libraries of their
// own ship helpers of their own under other names (mergerfs: mergerfs-fusermount; go-fuse looks
// for fusermount3 then fusermount on PATH). Every file in these directories whose name contains
// "fusermount" (symlinks resolved, duplicates dropped) gets ward-fusermount bound over it in the
// file system's namespace, so no naming scheme has to be known in advance.
constexpr const char* kFusermountDirs[] = {
    "/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin",
};
constexpr std::string_view kFusermountWord = "fusermount";

// The system calls the self-mounting file system must not really make, and what they return:
// mount(2) EPERM is what sends libfuse (2 and 3, as root) to fusermount; umount2 "succeeds" so that
// libfuse's unmount at exit neither fails loudly nor touches anything (ward owns the mount); the
// new mount API is "absent" so that a newer library falls back to mount(2). Native ABI only.
struct Redirect {
  long nr;
  int err;  // 0: pretend success
};
constexpr Redirect kRedirects[] = {
    {SYS_mount, EPERM},  // a self-mounting FS's mount(2) goes to ward instead (mount_filter)
    {SYS_umount2, 0},
#ifdef SYS_fsopen
    {SYS_fsopen, ENOSYS},   {SYS_fsconfig, ENOSYS}, {SYS_fsmount, ENOSYS},
    {SYS_move_mount, ENOSYS}, {SYS_fspick, ENOSYS}, {SYS_open_tree, ENOSYS},
#endif
};

// Where a step in the child failed; one row of words per step.
enum Step : int { kMoveFds, kExec, kSlave, kDetach, kTmpfs, kBind, kFilter, kFork, kSandbox, kCaps, kLimit, kUser, kSteps };
constexpr const char* kStepWords[kSteps] = {
    "cannot set up the file system's descriptors",
    "cannot run",
    "cannot make the file system's mount namespace a slave of ward's",
    "cannot detach ward's mount in the file system's mount namespace",
    "cannot mount an empty tmpfs over the mount point in the file system's namespace",
    "cannot bind ward-fusermount over",
    "cannot install the file system's seccomp filter",
    "cannot fork the file system in its PID namespace",
    "",  // the sandbox's operation says it (describe_failure)
    "cannot drop capabilities from the file system's bounding set",
    "cannot join the file system's cgroups (its task and memory bounds)",
    "cannot take the ids and groups of the user the file system runs as (--user)",
};
// Capabilities the sandboxed FS does not get (see init_main): each reaches past its root into the
// host's kernel, and no file system needs it to serve files. CAP_MKNOD stays: a pass-through FS
// stores device nodes for its users; every place it can write in the sandbox is nodev
// (sandbox.cc), so it can make a disk's node but not open it. CAP_SYS_ADMIN, CAP_DAC_OVERRIDE,
// CAP_CHOWN, CAP_FOWNER stay: a pass-through FS serves every user's files with them.
constexpr int kSandboxDrops[] = {
    CAP_DAC_READ_SEARCH,  // open_by_handle_at: any file of a file system a bind is on
    CAP_SYS_MODULE,       // kernel modules
    CAP_SYS_RAWIO,        // iopl, ioperm, /dev/mem-like access
    CAP_SYS_BOOT,         // reboot, kexec
    CAP_SYS_TIME,         // the host's clock
    CAP_NET_ADMIN,        // the host's network (its namespace is the host's: sshfs needs the network)
    CAP_NET_RAW,          // raw sockets on the host's network
    CAP_SYS_PTRACE,       // no file system debugs other processes
    CAP_SYSLOG,           // the kernel log, kernel addresses in /proc
    CAP_SYS_NICE,         // real-time priorities starve the host's CPUs
    CAP_SYS_PACCT,        // host-wide process accounting
    CAP_SYS_TTY_CONFIG,   // vhangup of terminals
    CAP_AUDIT_CONTROL, CAP_AUDIT_WRITE, CAP_AUDIT_READ,  // the host's audit log
    CAP_MAC_ADMIN, CAP_MAC_OVERRIDE,  // LSM policy
    CAP_WAKE_ALARM, CAP_BLOCK_SUSPEND,  // the host's power state
    CAP_BPF, CAP_PERFMON,  // (also granted by CAP_SYS_ADMIN: refused by kSandboxRefusals too)
    CAP_CHECKPOINT_RESTORE,
};

// System calls the sandboxed FS is refused (EPERM) because CAP_SYS_ADMIN, which it keeps, grants
// them over the whole host (docs/fuse.md, "Sandbox"). Hostname and SysV IPC are the FS's own
// namespaces' instead; /proc is read-only (sandbox.cc).
constexpr long kSandboxRefusals[] = {
    SYS_bpf,            // programs that read kernel memory and trace every process
    SYS_perf_event_open,  // system-wide and kernel profiling
    SYS_syslog,         // reading and clearing the kernel log
    SYS_fanotify_init,  // a filesystem-wide mark on a seen path's file system sees (and with
                        // permission events stalls) every host process using that file system
    SYS_keyctl, SYS_add_key, SYS_request_key,  // uid 0's keyrings are the host root's
    SYS_swapon, SYS_swapoff,  // the host's memory
    SYS_acct,           // host-wide accounting into a file
    SYS_quotactl,       // quotas of a seen path's whole file system
#ifdef SYS_quotactl_fd
    SYS_quotactl_fd,
#endif
};

// ioctl requests no file system is let make, sandboxed or not: none of its three descriptors is a
// terminal (Options::fs_input, FsOutput's pipe), but unsandboxed it shares ward's session and so
// can open /dev/tty when ward runs in the foreground from one, and what it pushes into a
// terminal's input (TIOCSTI; TIOCLINUX's paste) the user's shell runs. (dev.tty.legacy_tiocsti=0
// would refuse TIOCSTI, but not to CAP_SYS_ADMIN.)
constexpr std::uint32_t kRefusedIoctls[] = {TIOCSTI, TIOCLINUX};

struct ChildError {
  int step = 0, err = 0, index = 0;
};

// Everything the child processes need, built before the fork: after it, a multithreaded host's
// child may not allocate.
struct Plan {
  std::vector<std::string> argv_s, env_s, targets;
  std::vector<char*> argv, envp;
  std::string mountpoint, standin;
  std::vector<sock_filter> filter, refusing;  // refusing: mount(2) EPERM, when no listener can be had
  sock_fprog prog{}, refusing_prog{};
  bool self_mount = false;
  std::vector<std::string> others;  // other FUSE mounts the unsandboxed self-mounting FS lets go of
  SandboxPlan box;  // used when `sandbox`
  std::vector<std::string> cgroup_procs;  // the ProcessLimit's cgroup.procs files, joined first
  std::optional<User> user;  // Options::user: taken last, after the filter, before the exec
  std::vector<gid_t> groups;  // user->groups as setgroups(2) takes them
  bool sandbox = false;
  int fs_end = -1, err_w = -1, status_w = -1;
  int out_w = -1;  // the file system's stdout and stderr (fs_output.h)
  int in_r = -1;   // its stdin (Options::fs_input)
  int syslog = -1;  // FsOutput's socket for the sandbox's /dev/log; -1: none
};

[[noreturn]] void child_fail(int fd, Step step, int index = 0) {
  ChildError e{step, errno, index};
  (void)!::write(fd, &e, sizeof e);
  ::_exit(127);
}

// Under chroot(2) (a build root, a container without its own mount namespace) "/" is a
// directory, not a mount: MS_SLAVE on it fails with EINVAL and pivot_root would refuse it. The
// namespace this process got from clone(CLONE_NEWNS) holds a copy of *every* mount of ward's
// namespace, most of them outside the chroot and so out of reach of umount2; left there they live
// as long as the file system does, and a copy of another FUSE mount (another `ward fuse`, anyone's)
// keeps that mount's connection alive after its owner unmounts it: that file system never ends.
// So make the chroot directory this namespace's real root, as it is for an unconfined ward: walk
// out to the namespace's root (a process that is root in its own mount namespace may; nothing of
// the file system has run yet), make everything a slave, bind the chroot directory over itself
// (now a mount), pivot into it and detach the rest. Same tree, same paths as before. Returns 0,
// or -1 with errno.
int root_chroot_dir() {
  int dir = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return -1;
  // A root below the working directory lets ".." climb past the chroot: /dev exists (ward opened
  // /dev/fuse through it).
  if (::chroot("/dev") != 0 || ::fchdir(dir) != 0) return -1;
  for (int i = 0; i < 4096; ++i) {
    struct stat here, up;
    if (::stat(".", &here) != 0 || ::stat("..", &up) != 0) return -1;
    if (here.st_dev == up.st_dev && here.st_ino == up.st_ino) break;
    if (::chdir("..") != 0) return -1;
  }
  char path[PATH_MAX];
  if (::chroot(".") != 0 || ::fchdir(dir) != 0 || ::getcwd(path, sizeof path) == nullptr) return -1;
  ::close(dir);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0 ||
      ::mount(path, path, nullptr, MS_BIND | MS_REC, nullptr) != 0 || ::chdir(path) != 0 ||
      ::syscall(SYS_pivot_root, ".", ".") != 0 || ::umount2(".", MNT_DETACH) != 0 || ::chdir("/") != 0)
    return -1;
  return 0;
}

// The namespace's init. Async-signal-safe calls only (see Plan).
int init_main(void* arg) {
  const Plan& p = *static_cast<const Plan*>(arg);
  // ward's descriptors go; those this process needs move to fixed numbers.
  int hi = std::max({p.fs_end, p.err_w, p.status_w, p.out_w, p.in_r, p.syslog, kSyslogFd}) + 1;
  // All copied above every fixed number first: a dup2 onto a fixed number may close an original.
  int fs = ::fcntl(p.fs_end, F_DUPFD, hi), er = ::fcntl(p.err_w, F_DUPFD, hi),
      st = ::fcntl(p.status_w, F_DUPFD, hi), out = ::fcntl(p.out_w, F_DUPFD, hi),
      in = ::fcntl(p.in_r, F_DUPFD, hi), log = p.syslog >= 0 ? ::fcntl(p.syslog, F_DUPFD, hi) : 0;
  if (fs < 0 || er < 0 || st < 0 || out < 0 || in < 0 || log < 0) child_fail(p.err_w, kMoveFds);
  if (::dup2(fs, kFsFd) < 0 || ::dup2(er, kErrFd) < 0 || ::dup2(st, kStatusFd) < 0 ||
      ::dup2(in, STDIN_FILENO) < 0 || ::dup2(out, STDOUT_FILENO) < 0 || ::dup2(out, STDERR_FILENO) < 0 ||
      (p.syslog >= 0 && ::dup2(log, kSyslogFd) < 0))
    child_fail(p.err_w, kMoveFds);
  ::close_range(p.syslog >= 0 ? kSyslogFd + 1 : kStatusFd + 1, ~0U, 0);
  ::fcntl(kErrFd, F_SETFD, FD_CLOEXEC);
  ::fcntl(kStatusFd, F_SETFD, FD_CLOEXEC);
  // Into the task and memory bounds before anything here forks ("0": this process).
  for (const std::string& procs : p.cgroup_procs) {
    int cg = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (cg < 0 || ::write(cg, "0", 1) != 1) child_fail(kErrFd, kLimit);
    ::close(cg);
  }

  // Dies with ward. ward may have died before this line: then its socket end is closed.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  pollfd alive{kFsFd, 0, 0};
  if (::poll(&alive, 1, 0) == 1 && (alive.revents & POLLHUP)) ::_exit(0);
  ::setpgid(0, 0);  // a terminal's ^C reaches ward (which unmounts first), not the FS

  if (p.self_mount || p.sandbox) {
    // Mounts made here stay here; ward's later unmounts (where the host shares) reach here.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0 &&
        (errno != EINVAL || root_chroot_dir() != 0))
      child_fail(kErrFd, kSlave);
  }
  if (p.sandbox) {
    // The minimal root (sandbox.h); it holds the self-mounting FS's mount point and stand-ins too.
    int failed = 0;
    if (run_sandbox(p.box, &failed) != 0) child_fail(kErrFd, kSandbox, failed);
    if (p.syslog >= 0) ::close(kSyslogFd);  // bound at /dev/log; ward reads its other descriptor
  } else if (p.self_mount) {
    // Not ward's mount: a stat on it would wait for INIT, which this FS sends only once mounted;
    // and a copy of it here would keep the kernel's connection alive after the user unmounts.
    // EINVAL: already unmounted (by the user, while ward restarts the FS): nothing to detach.
    if (::umount2(p.mountpoint.c_str(), MNT_DETACH) != 0 && errno != EINVAL) child_fail(kErrFd, kDetach);
    for (const auto& m : p.others) (void)::umount2(m.c_str(), MNT_DETACH);  // gone meanwhile: fine
    if (cover_mountpoint(p.mountpoint.c_str()) != 0) child_fail(kErrFd, kTmpfs);
    for (std::size_t i = 0; i < p.targets.size(); ++i)
      if (::mount(p.standin.c_str(), p.targets[i].c_str(), nullptr, MS_BIND, nullptr) != 0)
        child_fail(kErrFd, kBind, static_cast<int>(i));
    // A user may not open the host's /dev/fuse; libfuse needs only a descriptor (sandbox.cc).
    if (p.user && ::mount("/dev/null", "/dev/fuse", nullptr, MS_BIND, nullptr) != 0)
      child_fail(kErrFd, kBind, static_cast<int>(p.targets.size()));
  }

  sigset_t waited;
  sigemptyset(&waited);
  sigaddset(&waited, SIGCHLD);
  sigaddset(&waited, SIGTERM);
  ::sigprocmask(SIG_SETMASK, &waited, nullptr);
  pid_t leader = ::_Fork();
  if (leader < 0) child_fail(kErrFd, kFork);
  if (leader == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // In the sandbox the FS loses what would take it out of its root (docs/fuse.md, "Sandbox"):
    // file handles (CAP_DAC_READ_SEARCH: open_by_handle_at reaches any file of a file system one
    // of its binds is on), kernel modules and raw I/O. Device nodes it may make, not open.
    if (p.sandbox)
      for (int cap : kSandboxDrops)
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) child_fail(kErrFd, kCaps);
    if (p.self_mount) {
      // The filter's listener goes to ward (the first datagram on ward's socket, read by launch()
      // before anything the FS sends) and is closed here: the FS must not answer its own mounts.
      // A kernel or container that refuses a listener (EBUSY: one is already in the chain) gets
      // the refusing filter: mount(2) EPERM, fusermount stood in for, as before the listener.
      const int listener = static_cast<int>(
          ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &p.prog));
      if (listener >= 0) {
        if (!send_fd(kFsFd, listener)) child_fail(kErrFd, kFilter);
        ::close(listener);
      } else if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p.refusing_prog) != 0) {
        child_fail(kErrFd, kFilter);
      }
    } else if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p.prog) != 0) {
      child_fail(kErrFd, kFilter);
    }
    // The user (Options::user): groups first (setgroups needs root), then the group, then the
    // user, which clears every capability set (no SECBIT_KEEP_CAPS). no_new_privs: no set-user-id
    // or file-capability program the FS runs can give any of it back. The filter above was
    // installed while it still had CAP_SYS_ADMIN, so it needed no no_new_privs of its own.
    // Raw system calls, not glibc's: glibc's set*id brings every thread it knows of to the new ids,
    // and this process, cloned (not forked) from a ward with other threads (FsOutput's, a host's),
    // has only the one. With glibc's calls it sometimes waited on a futex for good before its exec
    // (FuseCli.StatusSaysWhoTheFileSystemRunsAs hung in several of 20 repeats once FsOutput's
    // thread existed; none in 30 since).
    if (p.user &&
        (::syscall(SYS_setgroups, p.groups.size(), p.groups.data()) != 0 ||
         ::syscall(SYS_setresgid, p.user->gid, p.user->gid, p.user->gid) != 0 ||
         ::syscall(SYS_setresuid, p.user->uid, p.user->uid, p.user->uid) != 0 || ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0))
      child_fail(kErrFd, kUser);
    if (p.sandbox && !p.box.exec_path.empty())
      ::execve(p.box.exec_path.c_str(), p.argv.data(), p.envp.data());  // resolved in the host
    else
      ::execvpe(p.argv[0], p.argv.data(), p.envp.data());
    child_fail(kErrFd, kExec);
  }
  ::close(kFsFd);  // only the FS holds its end now: ward sees POLLHUP when the FS let go of it
  ::close(kErrFd);

  int final_status = 0;
  bool failed = false;
  for (;;) {
    siginfo_t si;
    if (::sigwaitinfo(&waited, &si) < 0) continue;
    // SIGTERM from ward (outside the namespace: no pid here) goes to every process in it.
    if (si.si_signo == SIGTERM) {
      if (si.si_pid == 0) ::kill(-1, SIGTERM);
      continue;
    }
    for (;;) {
      int status = 0;
      pid_t r = ::waitpid(-1, &status, WNOHANG);
      if (r > 0) {
        if (!failed && status != 0) final_status = status, failed = true;
        continue;
      }
      if (r < 0 && errno == ECHILD) {  // nothing of the file system is left
        (void)!::write(kStatusFd, &final_status, sizeof final_status);
        ::_exit(0);
      }
      break;
    }
  }
}

// The mount point as an absolute path, without asking ward's own mount (a stat on it would wait
// for INIT): the parent directory resolved, the last name kept.
Result<std::string> absolute_mountpoint(std::string m) {
  while (m.size() > 1 && m.back() == '/') m.pop_back();
  auto slash = m.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : m.substr(0, slash));
  std::string name = slash == std::string::npos ? m : m.substr(slash + 1);
  if (name.empty() || name == "." || name == "..")
    return fail(Errc::misuse, "mount point " + m + ": name it by a path that ends in its own name");
  char buf[PATH_MAX];
  if (!::realpath(dir.c_str(), buf)) return fail(Errc::misuse, errno_text("mount point's directory " + dir, errno));
  std::string abs = buf;
  return (abs == "/" ? "" : abs) + "/" + name;
}

// glibc's malloc in the file system (any glibc program; others ignore the variable): a READ reply
// of the mount's max_read (128 KiB) does not fit its 16-buffer pipe, so libfuse copies it into a
// buffer it mallocs and frees per reply. By default glibc serves 128 KiB with mmap (then munmap:
// page faults and, in a threaded FS, TLB shootdowns per reply), or, once its threshold has
// adapted, gives the freed top of the arena back (trim) and faults it in again the next time.
// Here that cost a 128 KiB reply 4x the time of a 64 KiB one. So: requests below 1 MiB from the
// heap, and a free top kept up to 4 MiB per arena. The user's own GLIBC_TUNABLES come after these
// and so win (glibc takes the last value of a name).
constexpr std::string_view kMallocTunables = "glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold=4194304";

// NAME=value in an environment list, replacing an earlier NAME.
void set_env(std::vector<std::string>& env, const std::string& name, const std::string& value) {
  const std::string prefix = name + "=";
  std::erase_if(env, [&](const std::string& e) { return e.starts_with(prefix); });
  env.push_back(prefix + value);
}

}  // namespace

std::vector<std::string> fs_environment(std::vector<std::string> env, const std::optional<User>& user) {
  const std::string prefix = "GLIBC_TUNABLES=";
  std::string value(kMallocTunables);
  for (const auto& e : env)
    if (e.starts_with(prefix) && e.size() > prefix.size()) value += ":" + e.substr(prefix.size());
  set_env(env, "GLIBC_TUNABLES", value);
  // What a login of the user would have, so that the FS finds its configuration where it would
  // when run by hand (in the sandbox only if seen).
  if (user && !user->name.empty()) {
    set_env(env, "HOME", user->home);
    set_env(env, "USER", user->name);
    set_env(env, "LOGNAME", user->name);
  }
  return env;
}

namespace {

Result<std::string> find_standin() {
  std::string path;
  if (const char* env = std::getenv(kEnvStandIn); env && *env) {
    path = env;
  } else {
    char exe[PATH_MAX];
    ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return fail(Errc::load_failed, errno_text("readlink /proc/self/exe", errno));
    std::string self(exe, n);
    path = self.substr(0, self.rfind('/') + 1) + "ward-fusermount";
  }
  if (::access(path.c_str(), X_OK) != 0)
    return fail(Errc::load_failed,
                errno_text("a file system without {} mounts itself and needs ward-fusermount, "
                           "built beside ward (or named by " + std::string(kEnvStandIn) + "); " + path,
                           errno));
  return path;
}

// The most a file system's pipe may hold: 16 buffers, a new pipe's size. splice(2) from a pipe
// into ward's SEQPACKET socket sends at most 16 pipe buffers per datagram (fs/splice.c,
// splice_to_socket), so a reply spliced from a bigger pipe arrives in pieces that another thread's
// message may come between (docs/fuse.md, "Design: what the FS is given"). libfuse grows its pipe
// with F_SETPIPE_SZ to fit a reply and, refused, writes the reply with one writev instead.
constexpr std::uint32_t kPipeMax = 16 * 4096;

// Offset of the low 32 bits of system-call argument `i` in seccomp_data (fcntl's cmd and
// F_SETPIPE_SZ's size are unsigned int to the kernel: the high half is ignored there too).
constexpr std::uint32_t arg_low(int i) {
  return static_cast<std::uint32_t>(offsetof(seccomp_data, args) + 8 * i +
                                    (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? 0 : 4));
}

// What the seccomp filter of a file system holds.
struct FilterFor {
  bool redirect_mounts = false;  // kRedirects (a self-mounting or sandboxed FS)
  bool ask_ward = false;  // mount(2) handed to ward (SECCOMP_RET_USER_NOTIF, relay_mount.cc): a
                          // FUSE library that mounts with mount(2) and has no fusermount to fall
                          // back to (ntfs-3g's fuse-lite) gets ward's socket for its /dev/fuse
  bool sandbox = false;   // kSandboxRefusals
};

// Every file system: kRefusedIoctls and F_SETPIPE_SZ above kPipeMax fail with EPERM (what an
// unprivileged process gets above /proc/sys/fs/pipe-max-size); the rest as `what` says.
std::vector<sock_filter> fs_filter(FilterFor what) {
  const sock_filter load_nr = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr));
  std::vector<sock_filter> f = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ward::detail::kNativeArch, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      load_nr,
  };
  auto returns = [&](long nr, std::uint32_t ret) {
    f.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(nr), 0, 1));
    f.push_back(BPF_STMT(BPF_RET | BPF_K, ret));
  };
  auto errno_ret = [](int err) { return SECCOMP_RET_ERRNO | (static_cast<std::uint32_t>(err) & SECCOMP_RET_DATA); };
  if (what.ask_ward) returns(SYS_mount, SECCOMP_RET_USER_NOTIF);
  if (what.redirect_mounts)
    for (const Redirect& r : kRedirects) returns(r.nr, errno_ret(r.err));
  if (what.sandbox)
    for (long nr : kSandboxRefusals) returns(nr, errno_ret(EPERM));
  for (std::uint32_t req : kRefusedIoctls) {
    const sock_filter rule[] = {
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg_low(1)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, req, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        load_nr,
    };
    f.insert(f.end(), std::begin(rule), std::end(rule));
  }
  const sock_filter pipe_rule[] = {
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_fcntl, 0, 5),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg_low(1)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, F_SETPIPE_SZ, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, arg_low(2)),
      BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, kPipeMax, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
  };
  f.insert(f.end(), std::begin(pipe_rule), std::end(pipe_rule));
  f.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  return f;
}

// The self-mounting half of the plan: paths, the stand-in, its environment, the filter.
Result<void> plan_self_mount(const Options& o, Plan& p) {
  p.self_mount = true;
  p.mountpoint = WARD_TRY(absolute_mountpoint(o.mountpoint));
  p.standin = WARD_TRY(find_standin());
  char standin_real[PATH_MAX];
  const std::string standin = ::realpath(p.standin.c_str(), standin_real) ? standin_real : p.standin;
  for (const char* dir : kFusermountDirs) {
    std::error_code ec;  // a directory that is missing or unreadable holds no helper to stand in for
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().filename().string().find(kFusermountWord) == std::string::npos) continue;
      char buf[PATH_MAX];
      struct stat st {};
      // The stand-in itself may be installed in one of these directories: never bind it over itself.
      if (!::realpath(it->path().c_str(), buf) || ::stat(buf, &st) != 0 || !S_ISREG(st.st_mode) ||
          buf == standin || std::find(p.targets.begin(), p.targets.end(), buf) != p.targets.end())
        continue;
      p.targets.emplace_back(buf);
    }
  }
  std::sort(p.targets.begin(), p.targets.end());  // the same order, hence the same log, every run
  if (p.targets.empty())
    return fail(Errc::load_failed,
                "a file system without {} mounts itself through fusermount, and there is none here "
                "for ward-fusermount to stand in for (install fuse3: /bin/fusermount)");
  for (char** e = environ; e && *e; ++e) {
    std::string v = *e;
    if (!v.starts_with(std::string(kEnvSocket) + "=") && !v.starts_with(std::string(kEnvMountpoint) + "="))
      p.env_s.push_back(std::move(v));
  }
  p.env_s.push_back(std::string(kEnvSocket) + "=" + std::to_string(kFsFd));
  p.env_s.push_back(std::string(kEnvMountpoint) + "=" + p.mountpoint);
  return {};
}

}  // namespace

bool mounts_itself(const std::vector<std::string>& command) {
  return std::none_of(command.begin(), command.end(),
                      [](const std::string& a) { return a.find("{}") != std::string::npos; });
}

FsProcess& FsProcess::operator=(FsProcess&& o) noexcept {
  if (this == &o) return *this;
  kill_and_reap();
  close_fds();
  pid_ = std::exchange(o.pid_, -1);
  pidfd_ = std::exchange(o.pidfd_, -1);
  sock_ = std::exchange(o.sock_, -1);
  status_fd_ = std::exchange(o.status_fd_, -1);
  mount_fd_ = std::exchange(o.mount_fd_, -1);
  status_ = o.status_;
  limit_ = std::move(o.limit_);
  return *this;
}

void FsProcess::close_fds() {
  for (int* fd : {&pidfd_, &sock_, &status_fd_, &mount_fd_})
    if (*fd >= 0) ::close(*fd), *fd = -1;
}

void FsProcess::kill_and_reap(const std::function<void()>& meanwhile, int readable) {
  if (pid_ <= 0) return;
  pollfd hup{sock_, 0, 0};
  if (sock_ >= 0 && pidfd_ >= 0 && ::poll(&hup, 1, 0) == 1 && (hup.revents & POLLHUP)) {
    pollfd p{pidfd_, POLLIN, 0};
    while (::poll(&p, 1, static_cast<int>(kSettle.count())) < 0 && errno == EINTR) {}
  }
  ::kill(pid_, SIGKILL);  // the init of a PID namespace: every process in it dies with it
  // Until the init is gone waitpid would block, with nobody answering what its tasks wait for.
  if (meanwhile && readable >= 0 && pidfd_ >= 0) wait_serving(std::nullopt, meanwhile, readable);
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {}
  int fs_status = 0;
  status_ = status_fd_ >= 0 && ::read(status_fd_, &fs_status, sizeof fs_status) == sizeof fs_status
                ? fs_status
                : st;
  pid_ = -1;
  if (pidfd_ >= 0) ::close(pidfd_), pidfd_ = -1;
  limit_ = ProcessLimit{};  // its cgroup is empty now: the namespace's last task went with its init
}

void FsProcess::end(std::chrono::milliseconds grace, const std::function<void()>& meanwhile, int readable) {
  if (pid_ <= 0) return;
  // No signal during the grace, as after the unmount of a direct mount: its device ended, the
  // file system leaves its loop and writes what it held. A SIGTERM then finds libfuse's handlers
  // already gone (removed before the teardown that writes) and kills it mid-write: fuse-zip lost
  // its archive so, one run in two. Whether it is still at work or waits for a signal cannot be
  // told from outside (a self-mounting one keeps the socket it was started with open for good),
  // so one that waits for a signal (rclone --daemon) waits the whole grace.
  wait_serving(std::chrono::steady_clock::now() + grace, meanwhile, readable);
  ::kill(pid_, SIGTERM);  // the init passes it to every process of the file system
  wait_serving(std::chrono::steady_clock::now() + kTermGrace, meanwhile, readable);
  kill_and_reap(meanwhile, readable);
}

void FsProcess::wait_serving(std::optional<std::chrono::steady_clock::time_point> until,
                             const std::function<void()>& meanwhile, int readable) {
  for (;;) {
    int timeout = -1;
    if (until) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*until - std::chrono::steady_clock::now()).count();
      if (left <= 0) return;
      timeout = static_cast<int>(left);
    }
    pollfd p[2] = {{pidfd_, POLLIN, 0}, {meanwhile ? readable : -1, POLLIN, 0}};
    const int r = ::poll(p, 2, timeout);
    if (r < 0 && errno != EINTR) return;
    if (r <= 0) continue;
    if (p[0].revents) return;  // the init is gone
    if (p[1].revents & (POLLERR | POLLHUP | POLLNVAL)) readable = -1;  // no mount left to serve
    else if (p[1].revents & POLLIN) meanwhile();
  }
}

// The FUSE mounts of ward's namespace other than `own` that the command names no path under.
// This namespace's copies of them would keep each one's connection alive after its owner unmounts
// it (on hosts whose mounts are private, so the unmount does not propagate here); the sandbox
// drops them with the rest of the host's tree, the unsandboxed self-mounting FS detaches these.
std::vector<std::string> other_fuse_mounts(const std::vector<std::string>& command, const std::string& own) {
  std::vector<std::string> args, out;
  for (const auto& a : command)
    if (auto abs = absolute_mountpoint(a)) args.push_back(*abs);
  for (const MountInfo& m : read_mountinfo()) {
    const std::string& t = m.fstype;
    if (t != "fuse" && t != "fuseblk" && !t.starts_with("fuse.")) continue;
    if (m.mountpoint == own) continue;
    bool named = false;
    for (const auto& a : args) named |= a == m.mountpoint || a.starts_with(m.mountpoint + "/");
    if (!named) out.push_back(m.mountpoint);
  }
  return out;
}

// The instance's stdin (Options::fs_input): /dev/null, or a memfd of its own holding the bytes,
// read from the start and sealed (the file system cannot change what the next instance reads).
Result<UniqueFd> fs_input(const Options& o) {
  if (!o.fs_input) {
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null.valid()) return fail(Errc::load_failed, errno_text("open /dev/null", errno));
    return null;
  }
  if (o.fs_input->size() > Options::kMaxFsInput)
    return fail(Errc::misuse, "the file system's input is " + std::to_string(o.fs_input->size()) +
                                  " bytes; at most " + std::to_string(Options::kMaxFsInput) + " are kept for it");
  UniqueFd m(::memfd_create("ward-fs-input", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!m.valid()) return fail(Errc::load_failed, errno_text("memfd_create", errno));
  for (std::size_t done = 0; done < o.fs_input->size();) {
    ssize_t n = ::write(m.get(), o.fs_input->data() + done, o.fs_input->size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(Errc::load_failed, errno_text("writing the file system's input", errno));
    done += static_cast<std::size_t>(n);
  }
  if (::fcntl(m.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0 ||
      ::lseek(m.get(), 0, SEEK_SET) != 0)
    return fail(Errc::load_failed, errno_text("sealing the file system's input", errno));
  return m;
}

Result<FsProcess> launch(const Options& o, int output, int syslog) {
  if (o.command.empty()) return fail(Errc::misuse, "no file-system command");
  if (output < 0) return fail(Errc::misuse, "no descriptor for the file system's output");
  UniqueFd input = WARD_TRY(fs_input(o));  // the child has its copy once cloned
  Plan plan;
  plan.out_w = output;
  plan.in_r = input.get();
  if (mounts_itself(o.command)) {
    WARD_TRY(plan_self_mount(o, plan));
    plan.argv_s = o.command;
    if (!o.sandbox) plan.others = other_fuse_mounts(o.command, plan.mountpoint);
  } else {
    plan.argv_s = substitute(o.command, "/dev/fd/" + std::to_string(kFsFd));
    for (char** e = environ; e && *e; ++e) plan.env_s.emplace_back(*e);
  }
  plan.env_s = fs_environment(std::move(plan.env_s), o.user);
  if (o.user) {
    plan.user = o.user;
    plan.groups.assign(o.user->groups.begin(), o.user->groups.end());
    if (o.log_fd >= 0) {
      std::string line = "ward fuse " + o.mountpoint + ": the file system runs as " +
                         display_name(*o.user) + " (" +
                         std::to_string(o.user->uid) + ":" + std::to_string(o.user->gid) + "), with no capabilities\n";
      (void)!::write(o.log_fd, line.data(), line.size());
    }
  }
  if (plan.mountpoint.empty() && o.sandbox) plan.mountpoint = WARD_TRY(absolute_mountpoint(o.mountpoint));
  if (o.sandbox) {
    plan.box = WARD_TRY(plan_sandbox(o, plan.mountpoint, plan.self_mount, plan.standin, plan.targets,
                                        syslog >= 0 ? kSyslogFd : -1));
    plan.sandbox = true;
    plan.syslog = syslog;
    if (o.log_fd >= 0) {
      std::string line = "ward fuse " + o.mountpoint + ": sandbox: the file system sees the system's programs";
      for (const auto& s : plan.box.seen) line += ", " + s;
      line += "\n";
      (void)!::write(o.log_fd, line.data(), line.size());
    }
  }
  // mount(2) refused, umount2 a no-op (see kRedirects): for the sandboxed FS, so that it cannot
  // mount what it was not shown (a devtmpfs, a disk) nor uncover anything; kSandboxRefusals.
  // Pipes capped and terminal input refused for all.
  // A self-mounting FS's mount(2) goes to ward first (relay_mount.cc).
  plan.filter = fs_filter({plan.self_mount || plan.sandbox, plan.self_mount, plan.sandbox});
  plan.prog.len = static_cast<unsigned short>(plan.filter.size());
  plan.prog.filter = plan.filter.data();
  plan.refusing = fs_filter({plan.self_mount || plan.sandbox, false, plan.sandbox});
  plan.refusing_prog.len = static_cast<unsigned short>(plan.refusing.size());
  plan.refusing_prog.filter = plan.refusing.data();
  for (auto& a : plan.argv_s) plan.argv.push_back(a.data());
  plan.argv.push_back(nullptr);
  for (auto& e : plan.env_s) plan.envp.push_back(e.data());
  plan.envp.push_back(nullptr);

  FsProcess p;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return fail(Errc::load_failed, errno_text("socketpair", errno));
  p.sock_ = sv[0];
  plan.fs_end = sv[1];
  for (int fd : sv) {
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &kSocketBuf, sizeof kSocketBuf);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kSocketBuf, sizeof kSocketBuf);
  }
  // A send to a file system that stopped reading must not block ward forever.
  timeval tv{};
  tv.tv_sec = o.request_timeout.count() / 1000;
  tv.tv_usec = (o.request_timeout.count() % 1000) * 1000;
  ::setsockopt(p.sock_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

  int errpipe[2], statuspipe[2];
  if (::pipe2(errpipe, O_CLOEXEC) != 0) {
    ::close(plan.fs_end);
    return fail(Errc::load_failed, errno_text("pipe2", errno));
  }
  if (::pipe2(statuspipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(plan.fs_end), ::close(errpipe[0]), ::close(errpipe[1]);
    return fail(Errc::load_failed, errno_text("pipe2", errno));
  }
  plan.err_w = errpipe[1];
  plan.status_w = statuspipe[1];
  p.status_fd_ = statuspipe[0];
  auto close_child_ends = [&] { ::close(plan.fs_end), ::close(errpipe[1]), ::close(statuspipe[1]); };

  // The task and memory bounds (process_limit.h): cgroups per instance, named by ward's pid and a
  // count.
  Bounds bounds{o.max_tasks, o.max_memory};
  if (bounds.memory == Options::kHalfOfMemory)
    bounds.memory = static_cast<std::uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)) / 2;
  ProcessLimit limit;
  if (bounds.tasks > 0 || bounds.memory > 0) {
    static std::atomic<unsigned> instances{0};  // hosts may run several relays in threads
    limit = ProcessLimit::make(bounds, ProcessLimit::tag(++instances));
    plan.cgroup_procs = limit.procs();
    for (const Error& e : limit.missing())
      if (o.log_fd >= 0) {
        std::string line = "ward fuse " + o.mountpoint + ": a bound on the file system is missing (" + e.detail + ")\n";
        (void)!::write(o.log_fd, line.data(), line.size());
      }
  }
  void* stack = ::mmap(nullptr, kInitStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) {
    int e = errno;
    close_child_ends(), ::close(errpipe[0]);
    return fail(Errc::load_failed, errno_text("mmap", e));
  }
  // The sandboxed FS's hostname and SysV IPC are its own: root may rename the host or attach to
  // any segment root made there.
  int flags = CLONE_NEWPID | (plan.self_mount || plan.sandbox ? CLONE_NEWNS : 0) |
              (plan.sandbox ? CLONE_NEWUTS | CLONE_NEWIPC : 0) | SIGCHLD;
  pid_t pid = ::clone(init_main, static_cast<char*>(stack) + kInitStack, flags, &plan);
  int clone_errno = errno;
  ::munmap(stack, kInitStack);  // the child has its own copy
  close_child_ends();
  if (pid < 0) {
    ::close(errpipe[0]);
    return fail(Errc::load_failed, errno_text("clone (a PID namespace for the file system; ward fuse runs as root)", clone_errno));
  }
  p.pid_ = pid;
  p.limit_ = std::move(limit);
  p.pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  // Until the exec closes the pipe (or a step reports its failure): bounded like INIT, so that a
  // child stuck before its exec cannot hold ward (the destructor kills and reaps it).
  ChildError ce;
  ssize_t n = -1;
  if (readable_within(errpipe[0], o.init_timeout))
    while ((n = ::read(errpipe[0], &ce, sizeof ce)) < 0 && errno == EINTR) {}
  ::close(errpipe[0]);
  if (n < 0)
    return fail(Errc::hung, "the file system's process did not reach its exec within " +
                                std::to_string(o.init_timeout.count()) + " ms");
  if (n == sizeof ce && ce.step >= 0 && ce.step < kSteps) {
    std::string what = kStepWords[ce.step];
    if (ce.step == kExec) what += " " + o.command[0];
    if (ce.step == kSandbox && ce.index >= 0 && static_cast<std::size_t>(ce.index) < plan.box.ops.size())
      what = describe_failure(plan.box.ops[ce.index]);
    if (ce.step == kBind && ce.index >= 0 && static_cast<std::size_t>(ce.index) < plan.targets.size())
      what += " " + plan.targets[ce.index];
    if (ce.step == kBind && static_cast<std::size_t>(ce.index) == plan.targets.size())
      what = "cannot bind /dev/null over /dev/fuse for the user the file system runs as";
    // A host where the sandbox cannot be built (no pivot_root, a /proc that may not be mounted
    // again): say how to run without it.
    std::string hint = ce.step == kSandbox || ce.step == kCaps ? " (--no-sandbox runs the file system without it)" : "";
    return fail(Errc::load_failed, errno_text(what, ce.err) + hint);
  }
  if (p.pidfd_ < 0) return fail(Errc::load_failed, errno_text("pidfd_open", errno));
  if (plan.self_mount) {
    // Sent before the exec that closed the error pipe, so it is here now, unless the kernel
    // refused the listener (the child fell back to refusing mount(2)).
    p.mount_fd_ = recv_fd(p.sock_, MSG_DONTWAIT);
    // Closed: the file system died before it sent it (killed while starting: a restart may
    // succeed, so not load_failed, which fs_failed takes for a failure that would repeat).
    if (p.mount_fd_ < 0 && errno == ECONNRESET)
      return fail(Errc::exited, "the file system exited before it sent its mount listener");
    if (p.mount_fd_ < 0 && errno != EAGAIN)
      return fail(Errc::load_failed, errno_text("receiving the file system's mount listener", errno));
    if (p.mount_fd_ < 0 && o.log_fd >= 0) {
      const std::string line = "ward fuse " + o.mountpoint +
                               ": no seccomp listener here: the file system's mount(2) is refused, only fusermount is stood in for\n";
      (void)!::write(o.log_fd, line.data(), line.size());
    }
  }
  return p;
}

}  // namespace ward::fuse::detail
