// ward-fsconform's checks: POSIX file-system behaviours, each a name and a function that runs in
// a directory of its own and returns an Outcome (pass, fail or skip, with one line of reason).
//
// Contract for a check function (the runner, runner.h, keeps the other side):
// - It runs in a child process of the runner, in a process group of its own, with a deadline:
//   it may block, crash, leak descriptors or memory; the runner kills the group and counts a
//   failure. It may fork (as_other() does), its children stay in that group.
// - Ctx::dir exists, is empty, belongs to the check alone and has mode 0777. The runner closes
//   every descriptor the check left open and removes Ctx::dir afterwards, whatever the outcome, so a
//   check returns early at its first failure without cleaning up (files left behind that cannot
//   be removed turn a pass into a failure).
// - Each failure says what was called and what came back instead of what POSIX wants.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <cerrno>
#include <functional>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace ward::conform {

enum class Verdict { pass, fail, skip };

struct Outcome {
  Verdict verdict = Verdict::pass;
  std::string reason;  // empty for a pass
};

inline Outcome pass() { return {}; }
template <class... A>
Outcome failed(fmt::format_string<A...> f, A&&... a) {
  return {Verdict::fail, fmt::format(f, std::forward<A>(a)...)};
}
template <class... A>
Outcome skipped(fmt::format_string<A...> f, A&&... a) {
  return {Verdict::skip, fmt::format(f, std::forward<A>(a)...)};
}

struct Ctx {
  std::string dir;         // the check's own empty directory (absolute or relative to the cwd)
  uid_t other_uid = 65534;  // the unprivileged user permission checks switch to (nobody)
  gid_t other_gid = 65534;

  [[nodiscard]] std::string p(std::string_view name) const { return dir + "/" + std::string(name); }
};

using CheckFn = Outcome (*)(const Ctx&);

struct Check {
  const char* name;  // "group.behaviour": what --only matches
  const char* what;  // one line for --list
  CheckFn fn;
};

// The tables, one per kind of behaviour (checks_*.cc); all_checks() joins them in this order.
std::span<const Check> name_checks();   // open flags, errno cases, names, mkdir/rmdir, links, rename
std::span<const Check> data_checks();   // truncate, holes, large offsets, integrity, sync, statfs, locks, xattrs
std::span<const Check> attr_checks();   // permissions as another user, chmod/chown, times
std::span<const Check> dir_checks();    // readdir

// ---- helpers for the checks (check.cc) ----

// "ENOENT" for ENOENT (the symbol, not strerror's prose: reasons compare expected with actual).
std::string errname(int e);
// "ENOTEMPTY|EEXIST"
std::string errnames(std::initializer_list<int> es);

// Writes `data` into a new file (O_CREAT|O_TRUNC, `mode`); "" or the reason it failed.
std::string put(const std::string& path, std::string_view data, mode_t mode = 0644);
// The file's whole content; `ok` false (and the reason in the result) when it cannot be read.
std::string get(const std::string& path, bool& ok);
// Bytes [off, off+len) of fd via pread: fewer at the end of the file.
std::string pget(int fd, off_t off, std::size_t len);
// True when every byte is zero.
bool zeros(std::string_view s);
// Deterministic bytes (a simple generator), for data that a relay could reorder or corrupt.
std::string pattern(std::size_t n, std::uint32_t seed);

// Sets atime and mtime of `path` (not following a symlink when `nofollow`).
int set_times(const std::string& path, timespec atime, timespec mtime, bool nofollow = false);
timespec ts(time_t sec, long nsec = 0);
timespec now();
// Negative, zero or positive like a comparison of a and b.
int cmp(const timespec& a, const timespec& b);
std::string show(const timespec& t);
// Sleeps long enough for the kernel's coarse file-time clock to move (it ticks every jiffy).
void tick();

// Runs `fn` in a child process as the unprivileged user (setgroups({}), setgid, setuid) and
// returns what fn returned: 0 for success or an errno. -1 when the child could not be made or
// died. Bounded only by the runner's deadline (the child is in the check's process group).
int as_other(const Ctx& c, const std::function<int()>& fn);
// A skip Outcome when permission checks cannot run here (not root, or the unprivileged user
// cannot reach Ctx::dir: a parent directory denies search or a FUSE mount lacks allow_other).
bool other_unavailable(const Ctx& c, Outcome& why);
// 0 if `r` is not -1, else errno: what as_other's functions return.
inline int rc(long r) { return r == -1 ? errno : 0; }

// Removes `path` and everything under it, making directories searchable first (checks leave
// 0000 directories). "" or the first thing that could not be removed.
std::string remove_tree(const std::string& path);

}  // namespace ward::conform

// The checks' vocabulary. Each returns a failed Outcome from the enclosing check on a mismatch,
// its text naming the call as written:
//   int fd = SYS(::open(c.p("f").c_str(), O_RDONLY));   // -1 fails, else the value
//   WANT_ERRNO(::rmdir(d.c_str()), ENOTEMPTY, EEXIST);   // must fail with one of these
//   WANT(st.st_nlink == 2, "st_nlink {}, want 2", st.st_nlink);
//   STEP(put(c.p("f"), "data"));                         // a helper's "" or reason
//   struct stat st = LSTAT(c.p("f"));
#define SYS(...)                                                                               \
  __extension__({                                                                              \
    errno = 0;                                                                                 \
    auto sys_r_ = (__VA_ARGS__);                                                               \
    if (sys_r_ == -1) return ::ward::conform::failed("{}: {}", #__VA_ARGS__, ::ward::conform::errname(errno)); \
    sys_r_;                                                                                    \
  })

#define WANT_ERRNO(call, ...)                                                                   \
  do {                                                                                          \
    errno = 0;                                                                                  \
    long want_r_ = static_cast<long>(call);                                                     \
    int want_e_ = errno;                                                                        \
    bool want_ok_ = false;                                                                      \
    for (int want_x_ : {__VA_ARGS__}) want_ok_ = want_ok_ || (want_r_ == -1 && want_e_ == want_x_); \
    if (!want_ok_)                                                                              \
      return ::ward::conform::failed("{}: {}, want {}", #call,                                  \
                                     want_r_ == -1 ? ::ward::conform::errname(want_e_)          \
                                                   : fmt::format("success ({})", want_r_),      \
                                     ::ward::conform::errnames({__VA_ARGS__}));                 \
  } while (0)

#define WANT(cond, ...)                                                   \
  do {                                                                    \
    if (!(cond)) return ::ward::conform::failed(__VA_ARGS__);             \
  } while (0)

// lstat(path) or fail the check: the struct stat.
#define LSTAT(path)                                                                        \
  __extension__({                                                                          \
    struct stat lstat_st_;                                                                 \
    if (::lstat((path).c_str(), &lstat_st_) != 0)                                          \
      return ::ward::conform::failed("lstat {}: {}", (path), ::ward::conform::errname(errno)); \
    lstat_st_;                                                                             \
  })

#define STEP(...)                                                         \
  do {                                                                    \
    std::string step_r_ = (__VA_ARGS__);                                  \
    if (!step_r_.empty()) return ::ward::conform::failed("{}", step_r_);  \
  } while (0)
