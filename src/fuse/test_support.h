// Shared by the `ward fuse` tests (relay_test.cc and the others beside it): a fixture that runs
// `ward fuse` as a process and always tears down (SIGKILL + reap + lazy unmount + work dir
// removed), bounded application children, and the comparison workload. Test-only; inline.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "core/read_file.h"
#include "fuse/fusectl.h"
#include "fuse/process_limit.h"


namespace ward::fuse::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline const std::string kWard = WARD_BINARY_DIR "/ward";
inline const std::string kHostile = WARD_BINARY_DIR "/ward-fuse-hostile";
// A pass-through that holds writes until FLUSH/FSYNC/RELEASE (src/fuse/buffering_fs_main.cc).
inline const std::string kBuffering = WARD_BINARY_DIR "/ward-fuse-buffering";

// The fstype of the mount at `path` in /proc/self/mounts, or "" when nothing is mounted there.
inline std::string mount_type(const std::string& path) {
  std::ifstream m("/proc/self/mounts");
  std::string src, dst, type, rest;
  std::string found;
  while (m >> src >> dst >> type && std::getline(m, rest))
    if (dst == path) found = type;
  return found;
}

struct Exit {
  bool done = false;  // false: still running at the deadline (then killed)
  int status = 0;
};

// Waits for `pid` until `limit`; kills it (SIGKILL) and reaps it when the deadline passes.
inline Exit wait_for(pid_t pid, std::chrono::milliseconds limit) {
  auto end = Clock::now() + limit;
  int st = 0;
  while (Clock::now() < end) {
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return {true, st};
    ::usleep(10'000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &st, 0);
  return {false, st};
}

// As wait_for, for a child that may be stuck in a FUSE request nobody will answer (SIGKILL does
// not end a request the file system has read): past the deadline the connection of the mount at
// `mnt` is aborted (fusectl.h) before the kill, so that the test ends and leaves nothing behind.
inline Exit wait_or_abort(pid_t pid, std::chrono::milliseconds limit, const std::string& mnt) {
  auto end = Clock::now() + limit;
  int st = 0;
  while (Clock::now() < end) {
    if (::waitpid(pid, &st, WNOHANG) == pid) return {true, st};
    ::usleep(10'000);
  }
  (void)ward::fuse::detail::abort_connection(ward::fuse::detail::fuse_connection_at(mnt));
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &st, 0);
  return {false, st};
}

// Runs `fn` in a child process; its result (an int) is its exit status. A deadline bounds it,
// so a hung mount fails the test instead of hanging it.
inline Exit in_child(const std::function<int()>& fn, std::chrono::milliseconds limit = 30s) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn());
  return wait_for(pid, limit);
}

// stat(2) of `path` by an application (a bounded child): 0 a directory, 1 not one, 5 EIO, 6 another
// error.
inline Exit stat_in_child(const std::string& path) {
  return in_child([path] {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) return S_ISDIR(st.st_mode) ? 0 : 1;
    return errno == EIO ? 5 : 6;
  });
}

class Fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "needs root and /dev/fuse";
    char tmpl[] = "/tmp/ward-fuse-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    mnt_ = dir_ + "/mnt";
    fs::create_directory(mnt_);
  }

  void TearDown() override {
    if (ward_ > 0) {
      // SIGTERM first: ward unmounts and removes what it made (its status file, the FS's cgroup).
      ::kill(ward_, SIGTERM);
      auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      bool reaped = false;
      while (!reaped && std::chrono::steady_clock::now() < end) {
        pid_t r = ::waitpid(ward_, nullptr, WNOHANG);
        reaped = r == ward_ || (r < 0 && errno == ECHILD);
        if (!reaped) ::usleep(5'000);
      }
      if (!reaped) ::kill(ward_, SIGKILL), ::waitpid(ward_, nullptr, 0);
    }
    ward::fuse::detail::ProcessLimit::sweep_stale();  // a ward the test SIGKILLed itself
    for (const auto& m : mounts_)
      while (!mount_type(m).empty() && ::umount2(m.c_str(), MNT_DETACH) == 0) {}
    if (err_ >= 0) ::close(err_);
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

 public:
  // Starts `ward fuse --foreground [opts] MNT -- cmd...` (it stays this process's child), its
  // stderr captured, its status file in the test's directory (WARD_FUSE_STATUS_DIR=DIR/status),
  // its stdin `in` (-1: this process's).
  void start(std::vector<std::string> opts, std::vector<std::string> cmd, const std::string& mnt = "", int in = -1) {
    std::string m = mnt.empty() ? mnt_ : mnt;
    mounts_.push_back(m);
    std::vector<std::string> env{"WARD_FUSE_STATUS_DIR=" + dir_ + "/status"};
    for (char** e = environ; *e; ++e)
      if (!std::string_view(*e).starts_with("WARD_FUSE_STATUS_DIR=")) env.push_back(*e);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> args{kWard, "fuse", "--foreground"};
    args.insert(args.end(), opts.begin(), opts.end());
    args.push_back(m);
    args.push_back("--");
    args.insert(args.end(), cmd.begin(), cmd.end());
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    ward_ = ::fork();
    if (ward_ == 0) {
      // If the test process dies without its TearDown (ctest's timeout kills it), ward gets
      // SIGTERM and unmounts: no mount is left behind.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      ::dup2(p[1], 2);
      if (in >= 0) ::dup2(in, 0);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(p[1]);
    if (err_ >= 0) ::close(err_);  // a test that starts ward again
    err_ = p[0];
  }

  // Waits (bounded) until MNT carries ward's mount; false if ward exited first.
  bool mounted(const std::string& mnt = "") {
    std::string m = mnt.empty() ? mnt_ : mnt;
    auto end = Clock::now() + 20s;
    while (Clock::now() < end) {
      if (mount_type(m) == "fuse.ward") return true;
      if (::waitpid(ward_, &status_, WNOHANG) == ward_) {
        ward_ = -1;
        return false;
      }
      ::usleep(5'000);
    }
    return false;
  }

  // ward's exit (bounded), and its stderr.
  Exit ward_exit(std::chrono::milliseconds limit = 30s) {
    Exit e{true, status_};
    if (ward_ > 0) e = wait_for(ward_, limit);
    ward_ = -1;
    std::string s;
    char b[4096];
    pollfd p{err_, POLLIN, 0};
    while (::poll(&p, 1, 1000) == 1) {
      ssize_t n = ::read(err_, b, sizeof b);
      if (n <= 0) break;
      s.append(b, n);
    }
    stderr_ = s;
    return e;
  }

 public:
  std::string dir_, mnt_, stderr_;
  std::vector<std::string> mounts_;
  pid_t ward_ = -1;
  int err_ = -1;
  int status_ = 0;
};



inline std::string fnv(const std::string& data) {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  return std::to_string(h);
}

inline std::string err(int r) { return r == 0 ? "ok" : std::string("E") + std::to_string(errno); }

inline std::string read_all(const std::string& p) {
  int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) return err(-1);
  std::string s;
  char b[65536];
  for (ssize_t n; (n = ::read(fd, b, sizeof b)) > 0;) s.append(b, n);
  ::close(fd);
  return s;
}

// The whole file at `path` ("" if it cannot be read).
// The whole file, or what could be read of it (core/read_file.h: a /proc file of a process that
// ends meanwhile must not throw).
inline std::string slurp(const std::string& path) { return ward::read_file(path); }

inline std::string list(const std::string& d) {
  DIR* dir = ::opendir(d.c_str());
  if (!dir) return err(-1);
  std::vector<std::string> names;
  while (auto* e = ::readdir(dir)) names.push_back(e->d_name);
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  std::string s;
  for (auto& n : names) s += n + ",";
  return s;
}

// The workload: each operation's result, one line each, independent of inode numbers and times.
inline std::string workload(const std::string& d) {
  std::ostringstream log;
  struct stat st;
  log << "mkdir " << err(::mkdir((d + "/dir").c_str(), 0755)) << "\n";
  int fd = ::open((d + "/dir/f").c_str(), O_CREAT | O_WRONLY | O_EXCL, 0644);
  log << "create " << (fd >= 0 ? "ok" : err(-1)) << "\n";
  log << "write " << ::write(fd, "hello world", 11) << "\n";
  ::close(fd);
  log << "read " << read_all(d + "/dir/f") << "\n";
  log << "stat " << err(::stat((d + "/dir/f").c_str(), &st)) << " " << st.st_size << " " << std::oct
      << (st.st_mode & 07777) << std::dec << "\n";
  log << "rename " << err(::rename((d + "/dir/f").c_str(), (d + "/dir/g").c_str())) << "\n";
  log << "old " << err(::stat((d + "/dir/f").c_str(), &st)) << "\n";
  log << "truncate " << err(::truncate((d + "/dir/g").c_str(), 5)) << " " << read_all(d + "/dir/g") << "\n";
  log << "symlink " << err(::symlink("g", (d + "/dir/s").c_str())) << "\n";
  char link[64] = {};
  log << "readlink " << ::readlink((d + "/dir/s").c_str(), link, sizeof link - 1) << " " << link << "\n";
  log << "via-link " << read_all(d + "/dir/s") << "\n";
  log << "readdir " << list(d + "/dir") << "\n";
  log << "rmdir-full " << err(::rmdir((d + "/dir").c_str())) << "\n";
  log << "unlink " << err(::unlink((d + "/dir/g").c_str())) << " " << err(::unlink((d + "/dir/s").c_str())) << "\n";
  log << "readdir " << list(d + "/dir") << "\n";
  log << "rmdir " << err(::rmdir((d + "/dir").c_str())) << "\n";
  // A larger file, written in odd-sized pieces, synced, read back and checksummed.
  std::string big(8 << 20, '\0');
  std::uint32_t x = 12345;
  for (auto& c : big) c = static_cast<char>((x = x * 1103515245 + 12345) >> 16);
  fd = ::open((d + "/big").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
  std::size_t off = 0;
  while (off < big.size()) {
    ssize_t n = ::write(fd, big.data() + off, std::min<std::size_t>(big.size() - off, 77'777));
    if (n <= 0) break;
    off += n;
  }
  log << "big-write " << off << " fsync " << err(::fsync(fd)) << "\n";
  // Out of the page cache, so that the read below comes from the file system, not the kernel.
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  log << "big-read " << fnv(read_all(d + "/big")) << " expect " << fnv(big) << "\n";
  log << "big-stat " << err(::stat((d + "/big").c_str(), &st)) << " " << st.st_size << "\n";
  log << "big-unlink " << err(::unlink((d + "/big").c_str())) << "\n";
  log << "root " << list(d) << "\n";
  return log.str();
}

// In a child about to act as user `as` (uid and gid, no other group): true when it now is.
inline bool become(uid_t as) {
  return ::setgroups(0, nullptr) == 0 && ::setresgid(as, as, as) == 0 && ::setresuid(as, as, as) == 0;
}

// The workload run in a child (bounded), its log through a pipe; as user `as` (become) when not 0.
inline std::string run_workload(const std::string& d, uid_t as = 0) {
  int p[2];
  if (::pipe(p) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(p[0]);
    if (as != 0 && !become(as)) {
      const std::string e = "cannot become uid " + std::to_string(as) + ": " + std::strerror(errno);
      (void)!::write(p[1], e.data(), e.size());
      ::_exit(1);
    }
    std::string s = workload(d);
    (void)!::write(p[1], s.data(), s.size());
    ::_exit(0);
  }
  ::close(p[1]);
  std::string s;
  char b[4096];
  auto end = Clock::now() + 120s;
  pollfd pf{p[0], POLLIN, 0};
  while (Clock::now() < end && ::poll(&pf, 1, 1000) >= 0) {
    if (!(pf.revents & (POLLIN | POLLHUP))) continue;
    ssize_t n = ::read(p[0], b, sizeof b);
    if (n <= 0) break;
    s.append(b, n);
  }
  ::close(p[0]);
  Exit e = wait_for(pid, 5s);
  if (!e.done) s += "\nworkload hung";
  return s;
}


// Pids of the processes whose command line mentions `needle` (a test's work directory): what a
// test started that may outlive it, e.g. a file system that daemonized. `comm`, when given, must
// equal /proc/PID/comm. Excludes the calling process.
inline std::vector<pid_t> processes_mentioning(const std::string& needle, const std::string& comm = "") {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    std::string name = e.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = std::stoi(name);
    if (pid == ::getpid()) continue;
    if (slurp(e.path() / "cmdline").find(needle) == std::string::npos) continue;
    if (!comm.empty() && slurp(e.path() / "comm") != comm + "\n") continue;
    out.push_back(pid);
  }
  return out;
}

// Waits (bounded) until no process mentions `needle`; SIGKILLs whatever is left then. Returns
// whether they were all gone before the deadline.
inline bool processes_gone(const std::string& needle, std::chrono::milliseconds limit = 10s) {
  auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (processes_mentioning(needle).empty()) return true;
    ::usleep(10'000);
  }
  for (pid_t p : processes_mentioning(needle)) ::kill(p, SIGKILL);
  return false;
}

// A fresh 64 MiB ext4 image at `img` (mkfs.ext4 in a bounded child); false if that failed.
inline bool make_ext4_image(const std::string& img) {
  Exit mk = in_child([&] {
    ::truncate(img.c_str(), 0);
    int fd = ::open(img.c_str(), O_CREAT | O_WRONLY, 0600);
    if (fd < 0 || ::ftruncate(fd, 64 << 20) != 0) return 126;
    ::close(fd);
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1), ::dup2(null, 2);
    execlp("mkfs.ext4", "mkfs.ext4", "-q", "-F", img.c_str(), nullptr);
    return 127;
  });
  return mk.done && WIFEXITED(mk.status) && WEXITSTATUS(mk.status) == 0;
}

// Real file systems: Fixture, plus every process that mentions the test's directory ended at
// teardown (a daemonized FS outlives ward's SIGKILL only until its namespace's init dies).
class FuseReal : public Fixture {
 protected:
  void TearDown() override {
    Fixture::TearDown();  // ward killed (its init and the FS's namespace die with it), unmounted
    if (!dir_.empty()) (void)processes_gone(dir_, 5s);
  }

 public:
  bool have(const std::string& program) {
    for (const char* d : {"/usr/bin/", "/usr/sbin/", "/sbin/", "/bin/"})
      if (::access((d + program).c_str(), X_OK) == 0) return true;
    return false;
  }

  // Runs `cmd(base)` (its mount point base + "/m") directly (it mounts itself with mount(2) as
  // root and daemonizes), then through `ward fuse` with the same command line; the workload's
  // log must be the same. `prepare(base)` makes what the FS serves; `ward_opts` go to ward.
  // Returns the direct log.
  std::string direct_vs_ward(const std::function<void(const std::string&)>& prepare,
                             const std::function<std::vector<std::string>(const std::string&)>& cmd,
                             const std::vector<std::string>& ward_opts = {}) {
    std::string a = dir_ + "/direct", b = dir_ + "/ward";
    for (const auto& base : {a, b}) {
      fs::create_directories(base + "/m");
      prepare(base);
    }
    mounts_.push_back(a + "/m");
    auto argv_s = cmd(a);
    Exit direct_mount = in_child([&] {
      std::vector<char*> argv;
      for (auto& s : argv_s) argv.push_back(s.data());
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      return 127;
    });
    EXPECT_TRUE(direct_mount.done && WIFEXITED(direct_mount.status) && WEXITSTATUS(direct_mount.status) == 0);
    EXPECT_NE(mount_type(a + "/m"), "") << "the direct mount did not happen";
    std::string direct = run_workload(a + "/m");
    EXPECT_EQ(::umount2((a + "/m").c_str(), 0), 0) << std::strerror(errno);
    EXPECT_TRUE(processes_gone(a)) << "the direct daemon outlived its unmount";

    start(ward_opts, cmd(b), b + "/m");
    EXPECT_TRUE(mounted(b + "/m")) << stderr_;
    std::string relayed = run_workload(b + "/m");
    EXPECT_EQ(relayed, direct);
    EXPECT_EQ(::umount2((b + "/m").c_str(), 0), 0) << std::strerror(errno);
    Exit e = ward_exit();
    EXPECT_TRUE(e.done);
    EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << stderr_;
    EXPECT_TRUE(processes_gone(b)) << "the file system outlived ward";
    EXPECT_EQ(mount_type(b + "/m"), "");
    return direct;
  }
};

}  // namespace ward::fuse::testing

// ---- appended for the conformance tests (conform_test.cc); usable by any `ward fuse` test ----

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

namespace ward::fuse::testing {

struct Captured {
  Exit exit;
  std::string out;  // stdout and stderr, interleaved
};

// Runs argv[0] (a path) with its output captured, bounded by `limit` (then SIGKILLed).
inline Captured run_capture(const std::vector<std::string>& argv, std::chrono::milliseconds limit) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return {{true, -1}, "pipe failed"};
  // Made before the fork: the child only calls what is safe after a fork of a process with other
  // threads (a RandomKiller's), never malloc.
  std::vector<char*> a;
  for (auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(p[1], 1);
    ::dup2(p[1], 2);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  ::close(p[1]);
  Captured c;
  auto end = Clock::now() + limit;
  char b[4096];
  pollfd pf{p[0], POLLIN, 0};
  while (Clock::now() < end && ::poll(&pf, 1, 200) >= 0) {
    if (!(pf.revents & (POLLIN | POLLHUP))) continue;
    ssize_t n = ::read(p[0], b, sizeof b);
    if (n <= 0) break;
    c.out.append(b, n);
  }
  ::close(p[0]);
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
  c.exit = wait_for(pid, std::max(left, std::chrono::milliseconds(1000)));
  return c;
}

// The first child of `parent` (the FS that `ward fuse` runs), or 0.
inline pid_t child_of(pid_t parent) {
  std::istringstream f(slurp("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children"));
  pid_t c = 0;
  return (f >> c) ? c : 0;
}

// A process whose command line has an argument containing `needle` (a daemonized FS, found by
// its mount point), or 0.
inline pid_t process_with_arg(const std::string& needle) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::istringstream f(slurp(e.path() / "cmdline"));
    std::string arg;
    while (std::getline(f, arg, '\0'))
      if (arg.find(needle) != std::string::npos) return std::stoi(name);
  }
  return 0;
}

// SIGKILLs a file system's process at random moments (uniformly between `min` and `max` apart)
// from a thread of its own until destroyed. `find` names the process at each moment (a restarted
// FS has a new pid; 0 = none now). Waits are on a condition variable, so destruction is prompt.
class RandomKiller {
 public:
  RandomKiller(std::function<pid_t()> find, std::chrono::milliseconds min, std::chrono::milliseconds max,
               unsigned seed)
      : find_(std::move(find)), thread_([this, min, max, seed] { loop(min, max, seed); }) {}
  ~RandomKiller() {
    {
      std::lock_guard l(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  RandomKiller(const RandomKiller&) = delete;
  RandomKiller& operator=(const RandomKiller&) = delete;

  [[nodiscard]] int kills() const { return kills_.load(); }

 private:
  void loop(std::chrono::milliseconds min, std::chrono::milliseconds max, unsigned seed) {
    std::minstd_rand rng(seed);
    std::uniform_int_distribution<long> gap(min.count(), max.count());
    std::unique_lock l(m_);
    while (!cv_.wait_for(l, std::chrono::milliseconds(gap(rng)), [this] { return stop_; })) {
      if (pid_t p = find_(); p > 0 && ::kill(p, SIGKILL) == 0) kills_.fetch_add(1);
    }
  }

  std::function<pid_t()> find_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<int> kills_{0};
  std::thread thread_;  // last: starts once the members it uses exist
};

}  // namespace ward::fuse::testing
