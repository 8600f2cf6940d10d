// `ward bench fuse`: one FUSE file system mounted directly and through `ward fuse`, measured in
// one run beside the physical floor (the same operations on a plain directory of the same disk,
// no FUSE at all): large sequential write and read (MB/s) and small-file create / stat / unlink
// (op/s), a lookup of a fresh name (us), and on ward alone the cost of a restart as an application
// sees it (SIGKILL of the FS to the next stat answered). Issue 12's targets: ward within 10% of the
// direct mount on large sequential I/O, metadata at most 1.5x the direct mount's time (>= 0.67x its
// op/s), a restart visible for at most 50 ms.
//
// Shape. A row is one function in kRows (it measures one figure on one target); a target is
// where the application works (the floor directory or a mount point). Every repetition of a row
// runs on every target in turn, starting with a different target each time, so the noise of a
// shared machine falls on all of them alike; the median of the repetitions is reported.
//
// Cleanup. Everything lives in one mkdtemp directory; the Run object's destructor detaches every
// mount, ends every file-system process (it should exit by itself once unmounted; SIGTERM, then
// SIGKILL) and removes the directory, on success, failure and interruption alike. SIGINT/SIGTERM/
// SIGHUP set a flag the workloads check between operations; a second one kills the file systems
// at once, so that an operation blocked in a hung mount returns and the teardown can run.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "commands.h"
#include "floors.h"
#include "core/unique_fd.h"
#include "report.h"
#include "ward/core/error.h"

namespace ward::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kChunk = 1 << 20;  // the application's read and write size
constexpr auto kMountDeadline = 20s;     // launch until the mount appears
constexpr auto kExitDeadline = 5s;       // unmounted until the FS process has exited by itself

// ---- interruption --------------------------------------------------------------------------------
std::atomic<int> g_stop{0};  // the first stop signal received
constexpr int kMaxGroups = 8;
std::atomic<pid_t> g_groups[kMaxGroups];  // process groups of the file systems started

extern "C" void on_stop(int sig) {
  // Async-signal-safe: lock-free atomics and kill(2) only.
  if (g_stop.exchange(sig) != 0)
    for (auto& g : g_groups)
      if (const pid_t p = g.load(); p > 0) ::kill(-p, SIGKILL);
}

// Installs on_stop for the run (no SA_RESTART: a blocked read or write returns EINTR) and puts
// the previous handlers back after it.
class StopSignals {
 public:
  StopSignals() {
    g_stop = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    for (std::size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &sa, &old_[i]);
  }
  ~StopSignals() {
    for (std::size_t i = 0; i < kSignals.size(); ++i) ::sigaction(kSignals[i], &old_[i], nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  static constexpr std::array<int, 3> kSignals{SIGINT, SIGTERM, SIGHUP};
  std::array<struct sigaction, 3> old_{};
};

Result<void> check_stop() {
  if (const int s = g_stop.load()) return fail(Errc::misuse, fmt::format("interrupted by {}", ::strsignal(s)));
  return {};
}

// A failed system call on `what`, in words (or the interruption, which caused it).
std::unexpected<Error> sys_fail(const std::string& what) {
  const int e = errno;
  if (auto s = check_stop(); !s) return std::unexpected(s.error());
  return fail(Errc::bad_data, fmt::format("{}: {}", what, std::strerror(e)));
}

// ---- targets and rows ----------------------------------------------------------------------------
struct Target {
  std::string name;  // floor | direct | direct_maxread | ward
  fs::path root;     // where the application works: the floor directory or the mount point
  fs::path data;     // the file system's own data (`{dir}`); the floor's is its root
  bool fuse = false;
  pid_t pid = -1;  // the process holding the mount (the FS itself, or `ward fuse`); -1 if none
  dev_t dev = 0;   // the mount's device: a mount that went away would leave a plain directory
};

struct Sizes {
  std::uint64_t bytes = 256ull << 20;
  int files = 2000;
  int lookups = 200;  // fresh names looked up per repetition of `lookup`
  int kills = 20;     // restarts per repetition of `restart` and `restart_max`
};

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Writes `bytes` to a new file `p` in kChunk writes, fsyncs and closes it.
Result<void> write_file(const fs::path& p, std::uint64_t bytes) {
  std::vector<char> buf(kChunk);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<char>(i * 131 + 7);  // not all zero
  UniqueFd fd(::open(p.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644));
  if (fd.get() < 0) return sys_fail("open " + p.string());
  for (std::uint64_t done = 0; done < bytes;) {
    WARD_TRY(check_stop());
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, bytes - done));
    const ssize_t w = ::write(fd.get(), buf.data(), n);
    if (w <= 0) return sys_fail("write " + p.string());
    done += static_cast<std::uint64_t>(w);
  }
  if (::fsync(fd.get()) != 0) return sys_fail("fsync " + p.string());
  if (fd.close() != 0) return sys_fail("close " + p.string());
  return {};
}

// Reads `p` to its end in kChunk reads; MB/s. Short of `bytes` is an error (a wrong FS).
Result<double> read_file(const fs::path& p, std::uint64_t bytes) {
  std::vector<char> buf(kChunk);
  UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return sys_fail("open " + p.string());
  const auto t0 = Clock::now();
  std::uint64_t got = 0;
  for (;;) {
    WARD_TRY(check_stop());
    const ssize_t r = ::read(fd.get(), buf.data(), buf.size());
    if (r < 0) return sys_fail("read " + p.string());
    if (r == 0) break;
    got += static_cast<std::uint64_t>(r);
  }
  const double s = since(t0);
  if (got != bytes) return fail(Errc::bad_data, fmt::format("read {}: {} bytes, not {}", p.string(), got, bytes));
  return static_cast<double>(bytes) / s / 1e6;
}

// posix_fadvise(DONTNEED) on `p`: its clean pages leave the page cache of its file system.
Result<void> drop_cache(const fs::path& p) {
  UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return sys_fail("open " + p.string());
  if (const int e = ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED); e != 0) {
    errno = e;
    return sys_fail("posix_fadvise " + p.string());
  }
  return {};
}

// The same for every regular file of the file system's own data: whatever it reads the file's
// bytes from (the overlay's upper file, a passthrough's source, an image) comes from the disk.
Result<void> drop_data_cache(const Target& t) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(t.data, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec)) WARD_TRY(drop_cache(it->path()));
  if (ec) return fail(Errc::bad_data, fmt::format("walking {}: {}", t.data.string(), ec.message()));
  return {};
}

// ---- the rows: each measures one figure on one target ---------------------------------------------

Result<double> seq_write(const Target& t, const Sizes& s) {
  const fs::path p = t.root / "seq-write.dat";
  const auto t0 = Clock::now();
  WARD_TRY(write_file(p, s.bytes));
  const double secs = since(t0);
  if (::unlink(p.c_str()) != 0) return sys_fail("unlink " + p.string());
  return static_cast<double>(s.bytes) / secs / 1e6;
}

// The file the read rows read, written (untimed) once per target and kept for the run.
Result<fs::path> read_source(const Target& t, const Sizes& s) {
  const fs::path p = t.root / "seq-read.dat";
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0 || static_cast<std::uint64_t>(st.st_size) != s.bytes) WARD_TRY(write_file(p, s.bytes));
  return p;
}

// FUSE's page cache of the file dropped; the FS's own copy stays in the host's page cache, so
// this is the FUSE path's cost. The floor is the same read from the page cache, no FUSE.
Result<double> seq_read(const Target& t, const Sizes& s) {
  const fs::path p = WARD_TRY(read_source(t, s));
  if (t.fuse) WARD_TRY(drop_cache(p));
  return read_file(p, s.bytes);
}

// Everything dropped, FUSE's cache and the FS's data: every target reads from the disk.
Result<double> seq_read_cold(const Target& t, const Sizes& s) {
  const fs::path p = WARD_TRY(read_source(t, s));
  WARD_TRY(drop_cache(p));
  WARD_TRY(drop_data_cache(t));
  return read_file(p, s.bytes);
}

fs::path meta_dir(const Target& t) { return t.root / "meta"; }
std::string meta_file(const fs::path& d, int i) { return (d / fmt::format("f{:05}", i)).string(); }

Result<void> make_files(const Target& t, int n) {
  const fs::path d = meta_dir(t);
  if (::mkdir(d.c_str(), 0755) != 0) return sys_fail("mkdir " + d.string());
  for (int i = 0; i < n; ++i) {
    WARD_TRY(check_stop());
    const std::string f = meta_file(d, i);
    UniqueFd fd(::open(f.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644));
    if (fd.get() < 0) return sys_fail("create " + f);
    if (fd.close() != 0) return sys_fail("close " + f);
  }
  return {};
}

Result<void> remove_files(const Target& t, int n) {
  const fs::path d = meta_dir(t);
  for (int i = 0; i < n; ++i) {
    WARD_TRY(check_stop());
    const std::string f = meta_file(d, i);
    if (::unlink(f.c_str()) != 0) return sys_fail("unlink " + f);
  }
  if (::rmdir(d.c_str()) != 0) return sys_fail("rmdir " + d.string());
  return {};
}

double per_second(int n, double secs) { return static_cast<double>(n) / secs; }

Result<double> creates(const Target& t, const Sizes& s) {
  const auto t0 = Clock::now();
  WARD_TRY(make_files(t, s.files));
  const double secs = since(t0);
  WARD_TRY(remove_files(t, s.files));
  return per_second(s.files, secs);
}

// stat(2) of files just created: what the application sees, the kernel's attribute cache
// included (both mounts run the same FS with the same timeouts).
Result<double> stats(const Target& t, const Sizes& s) {
  WARD_TRY(make_files(t, s.files));
  const fs::path d = meta_dir(t);
  const auto t0 = Clock::now();
  for (int i = 0; i < s.files; ++i) {
    WARD_TRY(check_stop());
    struct stat st {};
    const std::string f = meta_file(d, i);
    if (::stat(f.c_str(), &st) != 0) return sys_fail("stat " + f);
  }
  const double secs = since(t0);
  WARD_TRY(remove_files(t, s.files));
  return per_second(s.files, secs);
}

Result<double> unlinks(const Target& t, const Sizes& s) {
  WARD_TRY(make_files(t, s.files));
  const auto t0 = Clock::now();
  WARD_TRY(remove_files(t, s.files));
  return per_second(s.files, since(t0));
}

// ---- restart: the time an application waits when the file system dies under it ------------------

double us_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

// stat(2) of a name that does not exist and was never asked for: the kernel has nothing cached
// for it, so every call is a LOOKUP the file system answers (ENOENT).
Result<double> fresh_lookup_us(const Target& t) {
  static unsigned long n = 0;
  const std::string p = (t.root / fmt::format("absent-{}-{}", ::getpid(), n++)).string();
  struct stat st {};
  const auto t0 = Clock::now();
  const int r = ::stat(p.c_str(), &st);
  const double us = us_since(t0);
  if (r == 0 || errno != ENOENT) return r == 0 ? fail(Errc::bad_data, "stat " + p + ": exists") : sys_fail("stat " + p);
  return us;
}

Result<double> lookups(const Target& t, const Sizes& s) {
  std::vector<double> v;
  for (int i = 0; i < s.lookups; ++i) {
    WARD_TRY(check_stop());
    v.push_back(WARD_TRY(fresh_lookup_us(t)));
  }
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The init of the file system's PID namespace: `ward fuse`'s only child (src/fuse/launch.h).
pid_t fs_init_of(pid_t ward) {
  std::ifstream f(fmt::format("/proc/{}/task/{}/children", ward, ward));
  pid_t p = -1;
  f >> p;
  return f ? p : -1;
}

// `s.kills` times: SIGKILL to the file system's init (every process of the FS dies with it), wait
// until it is gone, then one fresh lookup; the time from the kill to that lookup's answer (us).
// Each answer must be ENOENT (EIO would be a restart that failed) from a new instance.
Result<std::vector<double>> restart_times(const Target& t, const Sizes& s) {
  std::vector<double> v;
  for (int i = 0; i < s.kills; ++i) {
    WARD_TRY(check_stop());
    const pid_t init = fs_init_of(t.pid);
    if (init <= 0) return fail(Errc::bad_data, fmt::format("no file-system process under ward (pid {})", t.pid));
    UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, init, 0)));
    if (pidfd.get() < 0) return sys_fail(fmt::format("pidfd_open {}", init));
    const auto t0 = Clock::now();
    if (::kill(init, SIGKILL) != 0) return sys_fail(fmt::format("kill {}", init));
    pollfd p{pidfd.get(), POLLIN, 0};
    if (::poll(&p, 1, 5'000) != 1) return fail(Errc::hung, fmt::format("the file system (pid {}) outlived SIGKILL by 5 s", init));
    WARD_TRY(fresh_lookup_us(t));
    v.push_back(us_since(t0));
    if (fs_init_of(t.pid) == init) return fail(Errc::bad_data, "the file system was not restarted");
  }
  return v;
}

Result<double> restart_median(const Target& t, const Sizes& s) {
  auto v = WARD_TRY(restart_times(t, s));
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Result<double> restart_max(const Target& t, const Sizes& s) {
  auto v = WARD_TRY(restart_times(t, s));
  return *std::max_element(v.begin(), v.end());
}

// ---- the relay floor: one process hop against two, no file system at all -----------------------

// The process hops a target's requests take in the model: the direct mount's one (application,
// kernel, file system, back), ward's two (the same with ward between); 0: not modelled.
int hops_of(const Target& t) { return t.name == "direct" ? 1 : t.name == "ward" ? 2 : 0; }

constexpr std::size_t kModelRequest = 80;           // fuse_in_header + fuse_read_in: a READ, about a LOOKUP
constexpr std::size_t kModelEntry = 16 + 128;       // fuse_out_header + fuse_entry_out: a LOOKUP's answer
constexpr std::size_t kModelReadBytes = 128 << 10;  // one READ of ward's max_read
constexpr int kModelRounds = 2000;                  // round trips per repetition of hop_small

// Median round trip with a LOOKUP's sizes (us).
Result<double> hop_small(const Target& t, const Sizes&) {
  auto v = WARD_TRY(bench::relay_round_trips(hops_of(t), kModelRequest, kModelEntry, kModelRounds));
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// READ-sized round trips, one after another, as many as the read rows' file takes (MB/s).
Result<double> hop_read(const Target& t, const Sizes& s) {
  const int rounds = static_cast<int>(std::max<std::uint64_t>(1, s.bytes / kModelReadBytes));
  const auto v = WARD_TRY(bench::relay_round_trips(hops_of(t), kModelRequest, 16 + kModelReadBytes, rounds));
  double us = 0;
  for (const double x : v) us += x;
  return static_cast<double>(rounds) * kModelReadBytes / us;  // bytes per us = MB/s
}

struct RowSpec {
  const char* name;
  const char* unit;
  const char* what;      // the note on the direct row: what is measured
  const char* floor_is;  // the note on the floor row
  const char* target;    // the target for ward against the direct mount
  Result<double> (*measure)(const Target&, const Sizes&);
  // Set for rows that only a restarting target has (`ward`): its floor is this row on ward.
  const char* ward_floor = nullptr;
  // A model of the hops, not a file system: measured once for `direct` (one hop) and once for
  // `ward` (two); no floor.
  bool model = false;
};

constexpr RowSpec kRows[] = {
    {"write", "MB/s", "sequential write, 1 MiB writes, fsync at the end", "the same in a plain directory, no FUSE",
     "target >= 0.90x", seq_write},
    {"read", "MB/s", "sequential read, 1 MiB reads, FUSE's cache of the file dropped (the FS's data cached)",
     "the same file read from the page cache, no FUSE", "target >= 0.90x", seq_read},
    {"read_cold", "MB/s", "the same with the FS's data files dropped too: from the disk",
     "the file dropped from the page cache: from the disk", "target >= 0.90x", seq_read_cold},
    {"create", "op/s", "create + close of empty files in one directory", "the same in a plain directory",
     "target >= 0.67x (time <= 1.5x)", creates},
    {"stat", "op/s", "stat of the files just created", "the same in a plain directory", "target >= 0.67x (time <= 1.5x)",
     stats},
    {"unlink", "op/s", "unlink of those files", "the same in a plain directory", "target >= 0.67x (time <= 1.5x)", unlinks},
    {"lookup", "us", "stat of a fresh name (ENOENT): one LOOKUP round trip, median", "the same in a plain directory",
     "(lower is better)", lookups},
    {"restart", "us", "SIGKILL of the file system to the next stat answered, median of --kills",
     "ward/lookup: the same stat with no kill", "target <= 50 ms (50000 us)", restart_median, "lookup"},
    {"restart_max", "us", "the same, the slowest of --kills", "ward/lookup: the same stat with no kill",
     "target <= 50 ms (50000 us)", restart_max, "lookup"},
    {"hop_small", "us",
     "model, no FUSE: an 80-byte message and a 144-byte answer between processes (AF_UNIX SEQPACKET), "
     "median round trip; direct: one hop, ward: through a relay process",
     nullptr, "two hops against one: the least a relay adds to a LOOKUP here", hop_small, nullptr, true},
    {"hop_read", "MB/s",
     "model, no FUSE: 80-byte messages answered with 128 KiB, one after another; direct: one hop, "
     "ward: through a relay process",
     nullptr, "two hops against one: the least a relay costs a READ here", hop_read, nullptr, true},
};

// Rows given an ideal relay: `ideal/ROW` is the direct mount's figure plus what the model's second
// hop cost (ward/HOP - direct/HOP per message). It assumes one request at a time, as the model
// runs them; a file system that overlaps requests could come closer to the direct mount.
struct IdealSpec {
  const char* row;
  const char* hop_row;
  double bytes;  // 0: the rows are times in us; else rates in MB/s of messages of this many bytes
};
constexpr IdealSpec kIdeals[] = {{"lookup", "hop_small", 0}, {"read", "hop_read", kModelReadBytes}};

// Adds `ideal/ROW` to `m` for every kIdeals entry whose four figures were measured.
void add_ideals(bench::Measured& m) {
  for (const IdealSpec& i : kIdeals) {
    const std::string d = fmt::format("direct/{}", i.row), h1 = fmt::format("direct/{}", i.hop_row),
                      h2 = fmt::format("ward/{}", i.hop_row);
    if (!m.ns.contains(d) || !m.ns.contains(h1) || !m.ns.contains(h2)) continue;
    const auto us = [&](const std::string& k) { return i.bytes == 0 ? m.ns[k] : i.bytes / m.ns[k]; };
    const double ideal_us = us(d) + us(h2) - us(h1);
    const std::string key = fmt::format("ideal/{}", i.row);
    m.ns[key] = i.bytes == 0 ? ideal_us : i.bytes / ideal_us;
    m.unit[key] = m.unit[d];
  }
}

// ---- mounts --------------------------------------------------------------------------------------

std::vector<std::string> split_words(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) s.replace(at, from.size(), to);
}

// /proc/self/mounts escapes these characters in paths as octal.
std::string mounts_escaped(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\\') out += fmt::format("\\{:03o}", static_cast<unsigned char>(c));
    else out += c;
  }
  return out;
}

// Whether a FUSE file system is mounted on `mnt`. Reads /proc/self/mounts only: asking the
// mount itself (stat) would block on a file system that does not answer.
bool fuse_mounted(const fs::path& mnt) {
  const std::string want = mounts_escaped(mnt.string());
  std::ifstream m("/proc/self/mounts");
  std::string src, dst, type, rest;
  while (m >> src >> dst >> type && std::getline(m, rest))
    if (dst == want && type.starts_with("fuse")) return true;
  return false;
}

std::string tail_of(const fs::path& log) {
  std::ifstream in(log);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (s.size() > 2000) s = "..." + s.substr(s.size() - 2000);
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s.empty() ? "(no output)" : s;
}

std::string status_words(int st) {
  if (WIFEXITED(st)) return fmt::format("exited with {}", WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return fmt::format("killed by {}", ::strsignal(WTERMSIG(st)));
  return "stopped";
}

// Starts `argv` in its own process group (so a terminal's ^C reaches only this process, which
// tears down in order), dying with this process, its output to `log`.
Result<pid_t> spawn(const std::vector<std::string>& argv, const fs::path& log) {
  UniqueFd out(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  UniqueFd in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (out.get() < 0 || in.get() < 0) return sys_fail("open " + log.string());
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return sys_fail("pipe2");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return sys_fail("fork");
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) ::signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(in.get(), 0);
    ::dup2(out.get(), 1);
    ::dup2(out.get(), 2);
    ::execvp(args[0], args.data());
    const int e = errno;
    (void)!::write(p[1], &e, sizeof e);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: no window in which a signal to the group misses it
  ::close(p[1]);
  int e = 0;
  const ssize_t n = ::read(p[0], &e, sizeof e);  // EOF: exec succeeded (the pipe is close-on-exec)
  ::close(p[0]);
  if (n == static_cast<ssize_t>(sizeof e)) {
    ::waitpid(pid, nullptr, 0);
    return fail(Errc::load_failed, fmt::format("cannot run {}: {}", argv[0], std::strerror(e)));
  }
  return pid;
}

// One bench run's scratch directory, mounts and file-system processes; the destructor tears all
// of it down. One owner, the CLI's thread.
class Run {
 public:
  Run() = default;
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  ~Run() { teardown(); }

  Result<void> make_dir(const fs::path& parent) {
    std::string tmpl = (parent / "ward-bench-fuse-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) return sys_fail("mkdtemp in " + parent.string());
    dir_ = tmpl;
    return {};
  }
  const fs::path& dir() const { return dir_; }

  Result<Target> floor() {
    Target t{"floor", dir_ / "floor", dir_ / "floor"};
    if (::mkdir(t.root.c_str(), 0755) != 0) return sys_fail("mkdir " + t.root.string());
    return t;
  }

  // Mounts `name`: makes DIR/name/{mnt,data/<data_dirs>}, runs `argv` (in which `{dir}` is the
  // data directory and, when `fill_mnt`, `{}` the mount point) and waits until the mount appears.
  Result<Target> mount(const std::string& name, std::vector<std::string> argv, bool fill_mnt,
                       const std::vector<std::string>& data_dirs) {
    const fs::path base = dir_ / name, mnt = base / "mnt", data = base / "data", log = base / "log";
    for (const auto& d : std::vector<fs::path>{base, mnt, data})
      if (::mkdir(d.c_str(), 0755) != 0) return sys_fail("mkdir " + d.string());
    for (const auto& d : data_dirs)
      if (::mkdir((data / d).c_str(), 0755) != 0) return sys_fail("mkdir " + (data / d).string());
    for (auto& a : argv) {
      replace_all(a, "{dir}", data.string());
      if (fill_mnt) replace_all(a, "{}", mnt.string());
    }
    if (!fill_mnt) {  // `ward fuse` fills `{}` itself; it is given the mount point first
      std::error_code ec;
      const fs::path self = fs::read_symlink("/proc/self/exe", ec);
      if (ec) return fail(Errc::load_failed, "cannot find this executable: " + ec.message());
      // In the foreground (this process holds and ends it); restarts unlimited for the restart rows.
      std::vector<std::string> w{self.string(), "fuse", "--foreground", "--restarts", "1000000", "--log", "-",
                                 mnt.string(), "--"};
      argv.insert(argv.begin(), w.begin(), w.end());
    }
    mounts_.push_back({mnt, log, WARD_TRY(spawn(argv, log))});
    Mounted& m = mounts_.back();
    for (auto& g : g_groups) {
      pid_t none = 0;
      if (g.compare_exchange_strong(none, m.pid)) break;
    }
    const auto end = Clock::now() + kMountDeadline;
    while (!fuse_mounted(mnt)) {
      int st = 0;
      if (m.pid > 0 && ::waitpid(m.pid, &st, WNOHANG) == m.pid) {
        forget_group(std::exchange(m.pid, -1));
        // A file system that forks into the background exits 0 once mounted; unmounting ends it.
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && fuse_mounted(mnt)) break;
        return fail(Errc::load_failed,
                    fmt::format("{} ({}) {} before mounting; its output:\n{}", name, argv[0], status_words(st), tail_of(log)));
      }
      WARD_TRY(check_stop());
      if (Clock::now() > end)
        return fail(Errc::load_failed, fmt::format("{} ({}) did not mount {} within {} s; its output:\n{}", name, argv[0],
                                                   mnt.string(), kMountDeadline.count(), tail_of(log)));
      std::this_thread::sleep_for(10ms);
    }
    // The FS answers, and the mount point is its root, not the directory below.
    struct stat st {}, below {};
    if (::stat(mnt.c_str(), &st) != 0) {
      const int e = errno;
      // A failing FS's process says why as it exits: give it a moment to write that.
      if (m.pid > 0 && reaped_by(m.pid, Clock::now() + 1s)) forget_group(std::exchange(m.pid, -1));
      errno = e;
      return fail(Errc::load_failed, fmt::format("{} ({}): stat {}: {}; its output:\n{}", name, argv[0], mnt.string(),
                                                 std::strerror(errno), tail_of(log)));
    }
    if (::stat(base.c_str(), &below) != 0) return sys_fail("stat " + base.string());
    if (st.st_dev == below.st_dev) return fail(Errc::load_failed, fmt::format("{}: nothing mounted on {}", name, mnt.string()));
    return Target{name, mnt, data, true, m.pid, st.st_dev};
  }

 private:
  struct Mounted {
    fs::path mnt, log;
    pid_t pid;
  };

  static void forget_group(pid_t pid) {
    for (auto& g : g_groups) {
      pid_t p = pid;
      g.compare_exchange_strong(p, 0);
    }
  }

  // Waits for `pid` until `end`; true when it was reaped.
  static bool reaped_by(pid_t pid, Clock::time_point end) {
    for (;;) {
      const pid_t r = ::waitpid(pid, nullptr, WNOHANG);
      if (r == pid || (r < 0 && errno == ECHILD)) return true;
      if (Clock::now() > end) return false;
      std::this_thread::sleep_for(5ms);
    }
  }

  void teardown() {
    for (auto it = mounts_.rbegin(); it != mounts_.rend(); ++it) {
      // Detached even while busy; unmounted, the FS (or ward) reads ENODEV and exits by itself.
      while (::umount2(it->mnt.c_str(), MNT_DETACH) == 0) {}
      if (it->pid <= 0) continue;
      if (!reaped_by(it->pid, Clock::now() + kExitDeadline)) {
        ::kill(-it->pid, SIGTERM);
        if (!reaped_by(it->pid, Clock::now() + 2s)) {
          ::kill(-it->pid, SIGKILL);
          ::waitpid(it->pid, nullptr, 0);
        }
      }
      // Whatever else the FS left in its group (helpers) goes too.
      ::kill(-it->pid, SIGKILL);
      forget_group(it->pid);
    }
    bool still = false;
    for (const auto& m : mounts_) still = still || fuse_mounted(m.mnt);
    mounts_.clear();
    if (dir_.empty()) return;
    std::error_code ec;
    // Never walk into a mount that could not be detached: that would delete through it.
    if (still) fmt::print(stderr, "ward bench fuse: a mount under {} could not be detached; left in place\n", dir_.string());
    else fs::remove_all(dir_, ec);
    if (ec) fmt::print(stderr, "ward bench fuse: removing {}: {}\n", dir_.string(), ec.message());
  }

  fs::path dir_;
  std::vector<Mounted> mounts_;
};

// ---- the command ---------------------------------------------------------------------------------

struct Config {
  bool json = false, quick = false;
  int repetitions = 3;
  std::string filter = ".";
  std::uint64_t size_mb = 256;
  int files = 2000;
  std::string parent;
  std::string fs_command =
      "fuse-overlayfs -f -o lowerdir={dir}/lower,upperdir={dir}/upper,workdir={dir}/work {}";
  std::string direct_command;  // empty: fs_command
  std::string data_dirs = "lower,upper,work";
  unsigned compare_max_read = 0;
  int lookups = 200, kills = 20;
};

// A figure from a target whose mount went away (an FS that failed and was detached) would be the
// plain directory's: checked before and after every measurement.
Result<void> still_mounted(const Target& t) {
  if (!t.fuse) return {};
  struct stat st {};
  if (!fuse_mounted(t.root) || ::stat(t.root.c_str(), &st) != 0 || st.st_dev != t.dev)
    return fail(Errc::bad_data, fmt::format("the {} mount on {} is gone; its output:\n{}", t.name, t.root.string(),
                                            tail_of(t.root.parent_path() / "log")));
  return {};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, ','))
    if (!cur.empty()) out.push_back(cur);
  return out;
}

// Measures every selected row on every target; fills `m` with the medians by "target/row".
Result<void> measure_all(const std::vector<Target>& targets, const std::vector<const RowSpec*>& rows, const Sizes& sizes,
                         int reps, bench::Measured& m) {
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const RowSpec& row = *rows[r];
    fmt::print(stderr, "ward bench fuse: [{}/{}] {}: {} repetitions x {} targets\n", r + 1, rows.size(), row.name, reps,
               row.ward_floor ? 1 : row.model ? 2 : targets.size());
    std::vector<std::vector<double>> got(targets.size());
    for (int rep = 0; rep < reps; ++rep)
      for (std::size_t k = 0; k < targets.size(); ++k) {
        const std::size_t i = (k + static_cast<std::size_t>(rep)) % targets.size();  // a different one first each time
        if (row.ward_floor && targets[i].name != "ward") continue;  // only ward restarts
        if (row.model && hops_of(targets[i]) == 0) continue;
        auto v = [&]() -> Result<double> {
          WARD_TRY(still_mounted(targets[i]));
          auto figure = row.measure(targets[i], sizes);
          if (auto gone = still_mounted(targets[i]); !gone) {
            if (!figure) gone.error().detail = figure.error().detail + "\n" + gone.error().detail;
            return std::unexpected(gone.error());
          }
          return figure;
        }();
        if (!v) {
          Error e = v.error();
          e.detail = fmt::format("{} on {}: {}", row.name, targets[i].name, e.detail);
          return std::unexpected(std::move(e));
        }
        got[i].push_back(*v);
      }
    std::string line;
    for (std::size_t i = 0; i < targets.size(); ++i) {
      if (got[i].empty()) continue;
      const std::string key = targets[i].name + "/" + row.name;
      m.ns[key] = median(got[i]);
      m.unit[key] = row.unit;
      line += fmt::format("{}{} {:.1f}", line.empty() ? "" : ", ", targets[i].name, m.ns[key]);
    }
    fmt::print(stderr, "ward bench fuse:   {} {} (medians)\n", line, row.unit);
  }
  return {};
}

int run(const Config& c) {
  if (::geteuid() != 0) {
    fmt::print(stderr, "ward bench fuse: mounts file systems (mount(2), fusermount) and must run as root\n");
    return 1;
  }
  if (::access("/dev/fuse", R_OK | W_OK) != 0) {
    fmt::print(stderr, "ward bench fuse: /dev/fuse: {} (needs the fuse module and the device)\n", std::strerror(errno));
    return 1;
  }
  const std::vector<std::string> fs_argv = split_words(c.fs_command);
  const std::vector<std::string> direct_argv = split_words(c.direct_command.empty() ? c.fs_command : c.direct_command);
  if (fs_argv.empty() || direct_argv.empty()) {
    fmt::print(stderr, "ward bench fuse: the file system's command is empty\n");
    return 1;
  }
  const auto has_mnt = [](const std::vector<std::string>& v) {
    return std::any_of(v.begin(), v.end(), [](const std::string& a) { return a.find("{}") != std::string::npos; });
  };
  if (!has_mnt(fs_argv) || !has_mnt(direct_argv)) {
    fmt::print(stderr, "ward bench fuse: the file system's command needs `{{}}` where the mount point goes\n");
    return 1;
  }
  std::regex filter;
  try {
    filter = std::regex(c.filter);
  } catch (const std::regex_error& e) {
    fmt::print(stderr, "ward bench fuse: --filter: {}\n", e.what());
    return 1;
  }
  std::vector<const RowSpec*> rows;
  for (const RowSpec& r : kRows)
    if (std::regex_search(r.name, filter)) rows.push_back(&r);
  // A restart row needs its floor (the lookup row) measured in the same run, a row with an ideal
  // relay its hop row.
  const auto selected = [&](const std::string& name) {
    return std::any_of(rows.begin(), rows.end(), [&](const RowSpec* r) { return r->name == name; });
  };
  const auto need = [&](const std::string& name, bool first) {
    for (const RowSpec& f : kRows)
      if (f.name == name && !selected(name)) rows.insert(first ? rows.begin() : rows.end(), &f);
  };
  for (const RowSpec& r : kRows)
    if (r.ward_floor && selected(r.name)) need(r.ward_floor, true);
  for (const IdealSpec& i : kIdeals)
    if (selected(i.row)) need(i.hop_row, false);
  if (rows.empty()) {
    fmt::print(stderr, "ward bench fuse: --filter {} selects no row\n", c.filter);
    return 1;
  }
  const Sizes sizes = c.quick ? Sizes{8ull << 20, 100, 20, 3} : Sizes{c.size_mb << 20, c.files, c.lookups, c.kills};
  const std::vector<std::string> data_dirs = split_commas(c.data_dirs);

  StopSignals stop;
  bench::Measured m;
  {
    Run scratch;
    auto go = [&]() -> Result<void> {
      const char* tmp = std::getenv("TMPDIR");
      WARD_TRY(scratch.make_dir(!c.parent.empty() ? c.parent : tmp && *tmp ? tmp : "/tmp"));
      fmt::print(stderr, "ward bench fuse: working in {}\n", scratch.dir().string());
      std::vector<Target> targets;
      targets.push_back(WARD_TRY(scratch.floor()));
      targets.push_back(WARD_TRY(scratch.mount("direct", direct_argv, true, data_dirs)));
      if (c.compare_max_read) {
        // The direct mount with ward's request size, to tell the extra hop from the smaller reads.
        std::vector<std::string> a = direct_argv;
        a.insert(a.begin() + 1, {"-o", fmt::format("max_read={}", c.compare_max_read)});
        targets.push_back(WARD_TRY(scratch.mount("direct_maxread", a, true, data_dirs)));
      }
      targets.push_back(WARD_TRY(scratch.mount("ward", fs_argv, false, data_dirs)));
      fmt::print(stderr, "ward bench fuse: mounted {} targets; {} MiB files, {} small files\n", targets.size() - 1,
                 sizes.bytes >> 20, sizes.files);
      return measure_all(targets, rows, sizes, c.repetitions, m);
    };
    if (auto r = go(); !r) {
      fmt::print(stderr, "ward bench fuse: {}\n", r.error().detail);
      const int sig = g_stop.load();
      return sig ? 128 + sig : 1;  // `scratch` tears down first, as it goes out of scope
    }
  }
  add_ideals(m);
  bench::Table table(m);
  const std::string mr = fmt::format("direct_maxread={}", c.compare_max_read);
  for (const RowSpec* r : rows) {
    const std::string n = r->name;
    if (r->ward_floor) {
      table.add("ward/" + n, "ward/" + std::string(r->ward_floor), fmt::format("{}; {}", r->what, r->target));
      continue;
    }
    if (r->model) {
      table.add("direct/" + n, std::nullopt, r->what);
      table.add("ward/" + n, "direct/" + n, r->target);
      continue;
    }
    table.add("floor/" + n, std::nullopt, r->floor_is);
    table.add("direct/" + n, "floor/" + n, r->what);
    if (c.compare_max_read) {
      table.add("direct_maxread/" + n, "direct/" + n, fmt::format("direct mount with -o max_read={}", c.compare_max_read));
      table.add("ward/" + n, "direct_maxread/" + n, "ward against the direct mount with ward's max_read: the hop alone");
    }
    table.add("ward/" + n, "direct/" + n, fmt::format("through `ward fuse`; {}", r->target));
    table.add("ward/" + n, "floor/" + n, "ward against the physical floor");
    if (m.ns.contains("ideal/" + n)) {
      table.add("ideal/" + n, "direct/" + n, "an ideal relay: direct plus the model's second hop (hop rows)");
      table.add("ward/" + n, "ideal/" + n, "ward against the ideal relay");
    }
  }
  return table.finish(c.json);
}

}  // namespace

void add_bench_fuse(CLI::App& bench, int& exit_code) {
  auto c = std::make_shared<Config>();
  auto* cmd = bench.add_subcommand(
      "fuse",
      "One FUSE file system mounted directly and through `ward fuse`, measured in one run beside the "
      "physical floor (the same operations in a plain directory on the same disk, no FUSE): "
      "sequential write (1 MiB writes, fsync at the end) and read of a large file in MB/s, read with "
      "FUSE's page cache of the file dropped (`read`) and with the file system's data dropped too "
      "(`read_cold`, from the disk), small-file create / stat / unlink in op/s, the lookup of a fresh "
      "name (us), and the cost of one restart as an application sees it (`restart`, `restart_max`, "
      "ward only): SIGKILL of the file system (the init of its PID namespace, with every process in "
      "it), then at once a stat of a fresh name; the time from the kill to its answer, median and "
      "slowest of --kills, beside ward's lookup with no kill. Prints the median "
      "of --repetitions for each target, ward/direct and ward/floor. Issue 12's targets: ward >= 0.90x "
      "direct on large sequential I/O, metadata time <= 1.5x direct, restart <= 50 ms.\n"
      "The relay floor: `hop_small` and `hop_read` model the hops without FUSE, messages of a LOOKUP's "
      "and a 128 KiB READ's sizes between processes over AF_UNIX SEQPACKET, answered directly "
      "(`direct`: one hop) or through a relay process doing nothing else (`ward`: two hops). "
      "`ideal/lookup` and `ideal/read` add the model's second hop to the direct mount's figure: the "
      "best a relay can reach on this machine, printed beside ward.\n"
      "Needs root and /dev/fuse. Everything (layers, mount points, logs) lives in a fresh directory "
      "under --dir, removed at the end, also on failure and on SIGINT/SIGTERM (a second signal kills "
      "the file systems at once, for a hung mount). Progress goes to stderr, a line per row.\n"
      "The file system: --fs-command, words separated by spaces (no quoting), `{}` where the mount "
      "point goes (`ward fuse` fills it with /dev/fd/N), `{dir}` a fresh directory for its data, in "
      "which --data-dirs are made first. Each mount gets its own {dir}. The direct mount runs "
      "--direct-command (default: the same, with `{}` the mount point). Keep the FS in the "
      "foreground (-f). The default is fuse-overlayfs (scripts/setup.sh installs it).\n"
      "Exit codes: 0 measured; 1 refused (not root, no /dev/fuse, an option value it cannot use) or "
      "a step failed (the error and the file system's output on stderr); 2 a command line ward does "
      "not understand (unknown option, missing or malformed value); 128+N interrupted by signal N.\n"
      "Example: ward bench fuse --repetitions 3 --compare-max-read 131072");
  cmd->add_flag("--json", c->json, "Print a JSON array of {name, value, unit, floor, ratio}");
  cmd->add_option("--repetitions", c->repetitions, "Repetitions of each row on each target; the median is reported")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--filter", c->filter, "Regular expression selecting rows (write, read, read_cold, create, stat, unlink, lookup, restart, restart_max)")
      ->capture_default_str();
  cmd->add_option("--size-mb", c->size_mb, "Size of the large file in MiB")->capture_default_str()->check(CLI::Range(1, 65536));
  cmd->add_option("--files", c->files, "Small files created, stat'ed and unlinked per repetition")
      ->capture_default_str()->check(CLI::Range(1, 1000000));
  cmd->add_option("--lookups", c->lookups, "Fresh names looked up per repetition of the lookup row")
      ->capture_default_str()->check(CLI::Range(1, 1000000));
  cmd->add_option("--kills", c->kills, "SIGKILLs of the file system per repetition of the restart rows")
      ->capture_default_str()->check(CLI::Range(1, 100000));
  cmd->add_flag("--quick", c->quick, "Tiny sizes (8 MiB, 100 files): a smoke test, not a measurement");
  cmd->add_option("--dir", c->parent, "Directory in which the run's own directory is made (default $TMPDIR or /tmp)");
  cmd->add_option("--fs-command", c->fs_command, "The file system under `ward fuse`: `{}` mount point, `{dir}` its data")
      ->capture_default_str();
  cmd->add_option("--direct-command", c->direct_command,
                  "The file system mounted directly, if not --fs-command with `{}` the mount point");
  cmd->add_option("--data-dirs", c->data_dirs, "Comma-separated directories made in each {dir} before the FS starts")
      ->capture_default_str();
  cmd->add_option("--compare-max-read", c->compare_max_read,
                  "Also mount the direct command with `-o max_read=N` (ward mounts with 131072) and compare")
      ->check(CLI::Range(4096u, 1u << 24));
  cmd->callback([c, &exit_code] { exit_code = run(*c); });
}

}  // namespace ward::cli
