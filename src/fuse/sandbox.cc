// The file system's minimal root; the contract is in sandbox.h, the why in docs/fuse.md
// ("Sandbox").
#include "fuse/sandbox.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

namespace ward::fuse::detail {
namespace {

// The system's program directories: read-only, whole (a binary's libraries, its loader, the
// modules it dlopens — NSS, gconv, libfuse's — cannot all be known from outside). A symlink
// among them (merged /usr: /bin -> usr/bin) is recreated as the same symlink.
constexpr const char* kSystemDirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
// /etc: what the C library and libfuse read (users and groups, the loader's cache, the time
// zone, fuse.conf, mtab), and what a network file system needs to find its server (names:
// hosts, resolv.conf and the resolver's settings; services and protocols; the public CA
// certificates TLS checks a server against): all world-readable on the host. Nothing else of
// /etc (no shadow, no keys).
constexpr const char* kEtcFiles[] = {"/etc/passwd",       "/etc/group",         "/etc/nsswitch.conf",
                                     "/etc/ld.so.cache",  "/etc/ld.so.conf",    "/etc/ld.so.conf.d",
                                     "/etc/localtime",    "/etc/fuse.conf",     "/etc/mtab",
                                     "/etc/hosts",        "/etc/host.conf",     "/etc/resolv.conf",
                                     "/etc/gai.conf",     "/etc/services",      "/etc/protocols",
                                     "/etc/ssl/certs"};
// /dev: nodes that reveal nothing of the host. /dev/fuse only for a self-mounting FS (libfuse2
// opens it before its mount(2), which the filter refuses; without it libfuse gives up).
constexpr const char* kDevNodes[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
struct Link {
  const char* at;
  const char* text;
};
constexpr Link kDevLinks[] = {{"/dev/fd", "/proc/self/fd"},
                              {"/dev/stdin", "/proc/self/fd/0"},
                              {"/dev/stdout", "/proc/self/fd/1"},
                              {"/dev/stderr", "/proc/self/fd/2"}};
// Where the auto rule never makes a path visible (neither the directory nor anything below it
// unless it is named with --see): the host's own directories, which the FS either gets its own
// of (/proc, /dev, /tmp's place) or must not see whole because of one file in them.
constexpr const char* kNeverAuto[] = {"/", "/etc", "/dev", "/proc", "/sys", "/run", "/boot", "/var",
                                      "/root", "/home", "/usr", "/bin", "/sbin", "/lib", "/lib32",
                                      "/lib64", "/libx32", "/tmp"};
// Below these nothing is auto-seen either: the FS has its own (/proc), or they are the kernel's.
constexpr const char* kNeverAutoBelow[] = {"/proc", "/sys", "/dev"};
constexpr const char* kRootTmpfs = "mode=0755,size=1m";
constexpr const char* kTmpTmpfs = "mode=1777,size=64m";
constexpr const char* kMountpointTmpfs = "size=64k,mode=0755";

bool below_or_at(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.starts_with(dir) &&
                         (dir == "/" || path[dir.size()] == '/'));
}

std::string parent_of(const std::string& p) {
  auto s = p.rfind('/');
  return s == 0 || s == std::string::npos ? "/" : p.substr(0, s);
}

enum class Found { yes, absent, in_mount };
struct Resolved {
  Found found;
  std::string path;  // canonical when found
};

// realpath(3) that never looks up `mnt` or anything below it: components are walked one lstat at
// a time, symlinks expanded, and reaching `mnt` stops the walk (a lookup there would wait for
// INIT). `mnt` is canonical up to its last name, as every `done` prefix here is.
Result<Resolved> resolve(const std::string& path, const std::string& mnt) {
  if (path.empty()) return Resolved{Found::absent, {}};
  std::string start = path;
  if (start[0] != '/') {
    char cwd[PATH_MAX];
    if (!::getcwd(cwd, sizeof cwd)) return fail(Errc::load_failed, errno_text("getcwd", errno));
    start = std::string(cwd) + "/" + path;
  }
  std::vector<std::string> todo;  // the components left, next at the back
  auto push = [&todo](const std::string& p) {
    std::vector<std::string> parts;
    for (std::size_t i = 0; i <= p.size();) {
      auto j = p.find('/', i);
      if (j == std::string::npos) j = p.size();
      parts.push_back(p.substr(i, j - i));
      i = j + 1;
    }
    todo.insert(todo.end(), parts.rbegin(), parts.rend());
  };
  push(start);
  std::string done;
  int links = 0;
  while (!todo.empty()) {
    std::string c = std::move(todo.back());
    todo.pop_back();
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      done.resize(done.empty() ? 0 : done.rfind('/'));
      continue;
    }
    std::string next = done + "/" + c;
    if (next == mnt) return Resolved{Found::in_mount, next};
    struct stat st;
    if (::lstat(next.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return Resolved{Found::absent, {}};
      return fail(Errc::misuse, errno_text(path + ": " + next, errno));
    }
    if (S_ISLNK(st.st_mode)) {
      if (++links > 40) return fail(Errc::misuse, errno_text(path, ELOOP));
      char buf[PATH_MAX];
      ssize_t n = ::readlink(next.c_str(), buf, sizeof buf);
      if (n <= 0 || n == sizeof buf) return fail(Errc::misuse, errno_text(path + ": readlink " + next, errno));
      std::string text(buf, static_cast<std::size_t>(n));
      if (text[0] == '/') done.clear();
      push(text);
      continue;
    }
    done = next;
  }
  return Resolved{Found::yes, done.empty() ? "/" : done};
}

std::vector<std::string> split(const std::string& s, char c) {
  std::vector<std::string> v;
  std::size_t i = 0;
  for (auto j = s.find(c); j != std::string::npos; i = j + 1, j = s.find(c, i)) v.push_back(s.substr(i, j - i));
  v.push_back(s.substr(i));
  return v;
}

// The pieces of one argument that may name paths: split at ',', the value after the first '='
// of each, that split at ':' (overlay's lowerdir=/a:/b, KEY=PATH options, MODE:PATH).
std::vector<std::string> pieces(const std::string& arg) {
  std::vector<std::string> out;
  for (auto& opt : split(arg, ',')) {
    auto eq = opt.find('=');
    for (auto& p : split(eq == std::string::npos ? opt : opt.substr(eq + 1), ':'))
      if (!p.empty()) out.push_back(p);
  }
  return out;
}

bool is_system(const std::string& canonical) {
  for (const char* d : kSystemDirs) {
    struct stat st;
    if (::lstat(d, &st) == 0 && S_ISDIR(st.st_mode) && below_or_at(canonical, d)) return true;
  }
  return false;
}

// The FS's binary as the host resolves it (execvp's PATH search), or "" when there is none: then
// the child's exec fails and says so, as without a sandbox.
Result<std::string> find_binary(const std::string& name, const std::string& mnt) {
  std::vector<std::string> candidates;
  if (name.find('/') != std::string::npos) {
    candidates.push_back(name);
  } else {
    const char* env = std::getenv("PATH");
    std::string path = env && *env ? env : "/usr/local/bin:/usr/bin:/bin";
    for (auto& dir : split(path, ':')) candidates.push_back((dir.empty() ? "." : dir) + "/" + name);
  }
  for (auto& c : candidates) {
    Resolved r = WARD_TRY(resolve(c, mnt));
    struct stat st;
    if (r.found == Found::yes && ::stat(r.path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(r.path.c_str(), X_OK) == 0)
      return r.path;
  }
  return std::string();
}

// Whether the auto rule must leave `p` unseen (see kNeverAuto).
bool never_auto(const std::string& p) {
  return std::any_of(std::begin(kNeverAuto), std::end(kNeverAuto), [&](const char* d) { return p == d; }) ||
         std::any_of(std::begin(kNeverAutoBelow), std::end(kNeverAutoBelow),
                     [&](const char* d) { return below_or_at(p, d); }) ||
         is_system(p);
}

struct Builder {
  std::string root;
  std::vector<SandboxOp> ops;
  void add(SandboxOp::Kind k, const std::string& at, const std::string& b = {}) {
    ops.push_back({k, at.empty() ? std::string() : (at == "/" ? root : root + at), b});
  }
  // A host path made visible at its own path: the target made (a directory or a file), bound.
  // Read-write, a device node stays a device (the user named it: a disk the FS serves); anything
  // else is nodev, so that a node the FS makes there (it keeps CAP_MKNOD: a pass-through FS stores
  // device nodes) is no way out of its root.
  void show(const std::string& host, bool read_only) {
    struct stat st {};
    const bool found = ::stat(host.c_str(), &st) == 0;
    const bool dir = found && S_ISDIR(st.st_mode);
    const bool device = found && (S_ISBLK(st.st_mode) || S_ISCHR(st.st_mode));
    add(dir ? SandboxOp::mkdir : SandboxOp::mkfile, host);
    add(read_only ? SandboxOp::bind_ro : device ? SandboxOp::bind : SandboxOp::bind_nodev, host, host);
  }
  // A host path recreated as it is: a symlink as the same symlink, else shown read-only.
  void copy(const std::string& host) {
    struct stat st;
    if (::lstat(host.c_str(), &st) != 0) return;
    if (S_ISLNK(st.st_mode)) {
      char buf[PATH_MAX];
      ssize_t n = ::readlink(host.c_str(), buf, sizeof buf);
      if (n > 0 && n < static_cast<ssize_t>(sizeof buf)) add(SandboxOp::symlink, host, std::string(buf, n));
      return;
    }
    show(host, true);
  }
};

// Every piece of `command`'s arguments that may name a path (not the program, not an argument
// holding `{}`), resolved.
Result<std::vector<std::pair<std::string, Resolved>>> resolved_pieces(const std::vector<std::string>& command,
                                                                      const std::string& mnt) {
  std::vector<std::pair<std::string, Resolved>> out;
  for (std::size_t i = 1; i < command.size(); ++i) {
    if (command[i].find("{}") != std::string::npos) continue;
    for (auto& piece : pieces(command[i])) {
      Resolved r = WARD_TRY(resolve(piece, mnt));
      out.emplace_back(std::move(piece), std::move(r));
    }
  }
  return out;
}

// The paths the auto rule finds in `command` (docs/fuse.md, "Sandbox"): absolute, canonical.
Result<std::vector<std::string>> auto_seen_paths(const std::vector<std::string>& command,
                                                 const std::string& mnt) {
  std::vector<std::string> out;
  for (const auto& [piece, r] : WARD_TRY(resolved_pieces(command, mnt))) {
    std::string seen;
    if (r.found == Found::yes) {
      struct stat st;
      if (::stat(r.path.c_str(), &st) != 0) continue;
      // A regular file is seen with its directory: programs replace files by renaming a new
      // copy over them (libzip: fuse-zip saves the archive so), and a bound file cannot be
      // renamed over. Directories and device nodes are seen themselves.
      seen = S_ISDIR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISCHR(st.st_mode) ? r.path : parent_of(r.path);
    } else if (r.found == Found::absent && piece[0] == '/') {
      // A file the FS will create (fuse-zip's new archive): its directory, if that exists.
      Resolved d = WARD_TRY(resolve(parent_of(piece), mnt));
      if (d.found != Found::yes) continue;
      seen = d.path;
    } else {
      continue;  // a word that is not a path, or the mount point (the FS's own, handled apart)
    }
    if (!never_auto(seen) && std::find(out.begin(), out.end(), seen) == out.end()) out.push_back(seen);
  }
  // Paths on one file system are seen through their deepest common directory where the rule
  // allows that directory: a rename from one bind mount to another is EXDEV even within one file
  // system, and file systems rename between the directories they are given (fuse-overlayfs:
  // workdir to upperdir).
  for (bool merged = true; merged;) {
    merged = false;
    for (std::size_t i = 0; i < out.size() && !merged; ++i)
      for (std::size_t j = i + 1; j < out.size() && !merged; ++j) {
        struct stat si, sj;
        if (::stat(out[i].c_str(), &si) != 0 || ::stat(out[j].c_str(), &sj) != 0 || si.st_dev != sj.st_dev) continue;
        std::string common = out[i];
        while (!below_or_at(out[j], common)) common = parent_of(common);
        if (never_auto(common)) continue;
        std::erase_if(out, [&](const std::string& p) { return below_or_at(p, common); });
        out.push_back(common);
        merged = true;
      }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Result<std::vector<std::string>> named_paths(const std::vector<std::string>& command, const std::string& mnt) {
  std::vector<std::string> out;
  for (auto& [piece, r] : WARD_TRY(resolved_pieces(command, mnt)))
    if (r.found == Found::yes && std::find(out.begin(), out.end(), r.path) == out.end()) out.push_back(r.path);
  return out;
}

Result<std::string> resolve_seen(const std::string& opt, const std::string& path, const std::string& mnt) {
  Resolved r = WARD_TRY(resolve(path, mnt));
  if (r.found == Found::in_mount)
    return fail(Errc::misuse, opt + path + ": that is the mount point (or below it), the file system's own");
  if (r.found != Found::yes) return fail(Errc::misuse, errno_text(opt + path, ENOENT));
  if (r.path == "/") return fail(Errc::misuse, opt + path + ": the whole tree is no sandbox; say --no-sandbox");
  if (below_or_at(r.path, "/proc"))
    return fail(Errc::misuse, opt + path + ": the file system has its own /proc (its PID namespace's)");
  return r.path;
}

Result<SandboxPlan> plan_sandbox(const Options& o, const std::string& mnt, bool self_mount,
                                 const std::string& standin, const std::vector<std::string>& fusermounts,
                                 int syslog_fd) {
  // path -> read-only; the explicit options override what the auto rule found.
  std::map<std::string, bool> seen;
  if (o.auto_see)
    for (auto& p : WARD_TRY(auto_seen_paths(o.command, mnt))) seen[p] = false;
  for (const auto* list : {&o.see, &o.see_ro}) {
    bool ro = list == &o.see_ro;
    const char* opt = ro ? "--see-ro " : "--see ";
    for (const auto& p : *list) seen[WARD_TRY(resolve_seen(opt, p, mnt))] = ro;
  }

  SandboxPlan plan;
  Builder b{mnt, {}};
  b.ops.push_back({SandboxOp::detach, mnt, {}});  // ward's mount, in the FS's namespace only
  b.add(SandboxOp::tmpfs, "/", kRootTmpfs);
  for (const char* d : kSystemDirs) b.copy(d);
  b.add(SandboxOp::mkdir, "/etc");
  for (const char* f : kEtcFiles) b.copy(f);
  b.add(SandboxOp::mkdir, "/dev");
  for (const char* n : kDevNodes) b.show(n, false);
  // As a user (--user) it may not open the host's /dev/fuse (often root's alone, 0600), and
  // libfuse gives up when that open fails. It needs no real device: libfuse opens one only to name
  // its number in mount(2), which ward answers by putting its socket at that number (or refuses,
  // sending libfuse to the stand-in). So a user gets a node anyone may open, /dev/null, there.
  if (self_mount && o.user) {
    b.add(SandboxOp::mkfile, "/dev/fuse");
    b.add(SandboxOp::bind, "/dev/fuse", "/dev/null");
  } else if (self_mount) {
    b.show("/dev/fuse", false);
  }
  for (const Link& l : kDevLinks) b.add(SandboxOp::symlink, l.at, l.text);
  b.add(SandboxOp::mkdir, "/proc");
  b.add(SandboxOp::proc, "/proc");
  b.add(SandboxOp::mkdir, "/tmp");
  b.add(SandboxOp::tmpfs, "/tmp", kTmpTmpfs);
  // Sorted, a directory comes before what is below it; below a seen directory with the same
  // access, a path is already seen.
  std::string last_rw, last_ro;
  for (const auto& [path, ro] : seen) {
    std::string& last = ro ? last_ro : last_rw;
    if (!last.empty() && below_or_at(path, last)) continue;
    last = path;
    b.show(path, ro);
    plan.seen.push_back((ro ? "ro " : "rw ") + path);
  }
  plan.exec_path = WARD_TRY(find_binary(o.command[0], mnt));
  if (!plan.exec_path.empty() && !is_system(plan.exec_path)) b.show(plan.exec_path, true);
  if (self_mount) {
    b.add(SandboxOp::mkdir, mnt);
    b.add(SandboxOp::cover, mnt);
    for (const auto& t : fusermounts) {
      b.add(SandboxOp::mkfile, t);
      b.add(SandboxOp::bind, t, standin);
    }
  }
  b.ops.push_back({SandboxOp::pivot, mnt, {}});
  // ward's socket, which forwards what is sent to it into the log: after the pivot (its path is
  // short then, as sockaddr_un needs), before the root is read-only.
  if (syslog_fd >= 0) b.ops.push_back({SandboxOp::socket, "/dev/log", std::to_string(syslog_fd)});
  b.ops.push_back({SandboxOp::root_ro, "/", {}});
  char cwd[PATH_MAX];
  b.ops.push_back({SandboxOp::chdir, ::getcwd(cwd, sizeof cwd) ? cwd : "/", {}});
  for (const auto& op : b.ops)
    if (op.a.size() >= PATH_MAX || op.b.size() >= PATH_MAX)
      return fail(Errc::misuse, errno_text("sandbox: " + op.a, ENAMETOOLONG));
  plan.ops = std::move(b.ops);
  return plan;
}

namespace {

// mkdir -p, in the child: a stack buffer, no allocation. Existing components are left alone
// (they may be inside a read-only bind).
int make_dirs(const char* path, bool last_too) {
  char buf[PATH_MAX];
  std::size_t n = std::strlen(path);
  if (n >= sizeof buf) return errno = ENAMETOOLONG, -1;
  std::memcpy(buf, path, n + 1);
  for (std::size_t i = 1; i <= n; ++i) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    if (buf[i] == '\0' && !last_too) break;
    char saved = buf[i];
    buf[i] = '\0';
    struct stat st;
    if (::lstat(buf, &st) != 0 && (::mkdir(buf, 0755) != 0 && errno != EEXIST)) return -1;
    buf[i] = saved;
  }
  return 0;
}

int run_op(const SandboxOp& op) {
  const char* a = op.a.c_str();
  const char* b = op.b.c_str();
  struct stat st;
  switch (op.kind) {
    case SandboxOp::detach:
      // EINVAL: nothing mounted there any more (the user unmounted while ward restarts the FS);
      // the FS then starts, and ward sees the unmount on its connection.
      return ::umount2(a, MNT_DETACH) == 0 || errno == EINVAL ? 0 : -1;
    case SandboxOp::tmpfs: return ::mount("ward", a, "tmpfs", MS_NOSUID | MS_NODEV, b);
    case SandboxOp::cover: return cover_mountpoint(a);
    case SandboxOp::mkdir: return make_dirs(a, true);
    case SandboxOp::mkfile: {
      if (make_dirs(a, false) != 0) return -1;
      if (::lstat(a, &st) == 0) return 0;
      int fd = ::open(a, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
      return fd < 0 ? -1 : ::close(fd);
    }
    case SandboxOp::symlink:
      if (make_dirs(a, false) != 0) return -1;
      return ::symlink(b, a);
    case SandboxOp::bind: return ::mount(b, a, nullptr, MS_BIND, nullptr);
    case SandboxOp::bind_ro:
      if (::mount(b, a, nullptr, MS_BIND, nullptr) != 0) return -1;
      return ::mount(nullptr, a, nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr);
    case SandboxOp::bind_nodev:
      if (::mount(b, a, nullptr, MS_BIND, nullptr) != 0) return -1;
      return ::mount(nullptr, a, nullptr, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, nullptr);
    case SandboxOp::proc:  // read-only: /proc/sys is the host's kernel (core_pattern runs a program as root)
      return ::mount("proc", a, "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    case SandboxOp::pivot:
      // pivot_root(".", "."): the old root ends up on top of the new one, and is detached.
      if (::chdir(a) != 0 || ::syscall(SYS_pivot_root, ".", ".") != 0) return -1;
      if (::umount2(".", MNT_DETACH) != 0) return -1;
      return ::chdir("/");
    case SandboxOp::socket: {
      int fd = 0;
      for (const char* c = b; *c; ++c) fd = fd * 10 + (*c - '0');
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      const std::size_t n = std::strlen(a);
      if (n >= sizeof addr.sun_path) return errno = ENAMETOOLONG, -1;
      std::memcpy(addr.sun_path, a, n + 1);
      if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return -1;
      return ::chmod(a, 0666);  // a file system run as a user (--user) sends to it too
    }
    case SandboxOp::root_ro: return ::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr);
    case SandboxOp::chdir: return ::chdir(a) == 0 ? 0 : ::chdir("/");
    case SandboxOp::kKinds: break;
  }
  return errno = EINVAL, -1;
}

constexpr const char* kOpWords[SandboxOp::kKinds] = {
    "cannot detach ward's mount in the file system's namespace:",
    "cannot mount a tmpfs on",
    "cannot cover the mount point with an empty tmpfs:",
    "cannot make the directory",
    "cannot make the bind target",
    "cannot make the symlink",
    "cannot bind into the sandbox:",
    "cannot bind read-only into the sandbox:",
    "cannot bind (nodev) into the sandbox:",
    "cannot mount a fresh /proc on",
    "cannot pivot_root into",
    "cannot make ward's syslog socket at",
    "cannot remount the sandbox's root read-only:",
    "cannot change directory to",
};

}  // namespace

int cover_mountpoint(const char* dir) {
  // getdents64 on a buffer of our own: opendir allocates.
  int fd = ::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  alignas(8) char buf[1024];
  bool empty = true;
  for (;;) {
    long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n < 0) return ::close(fd), -1;
    if (n == 0) break;
    for (long at = 0; at < n && empty;) {
      const char* name = buf + at + 19;  // struct linux_dirent64: ino 8, off 8, reclen 2, type 1
      unsigned short reclen;
      std::memcpy(&reclen, buf + at + 16, sizeof reclen);
      empty = std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0;
      at += reclen;
    }
    if (!empty) break;
  }
  ::close(fd);
  return empty ? 0 : ::mount("ward", dir, "tmpfs", MS_NOSUID | MS_NODEV, kMountpointTmpfs);
}

int run_sandbox(const SandboxPlan& plan, int* failed) {
  for (std::size_t i = 0; i < plan.ops.size(); ++i)
    if (run_op(plan.ops[i]) != 0) {
      *failed = static_cast<int>(i);
      return -1;
    }
  return 0;
}

std::string describe_failure(const SandboxOp& op) {
  std::string s = std::string("sandbox: ") + (op.kind < SandboxOp::kKinds ? kOpWords[op.kind] : "?") + " " + op.a;
  if ((op.kind == SandboxOp::bind || op.kind == SandboxOp::bind_ro || op.kind == SandboxOp::bind_nodev) && !op.b.empty())
    s += " (from " + op.b + ")";
  return s;
}

}  // namespace ward::fuse::detail
