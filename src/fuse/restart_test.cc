// Restarting the file system under `ward fuse` (needs root and /dev/fuse). FuseRestart.*: the
// restart path against ward-fuse-hostile (a crash is invisible; a new instance that negotiates
// differently, a request that kills every instance, and the restart limit each end in a clear
// error). FuseReal.*Kills*: an unmodified Debian file system killed with SIGKILL at random moments
// while the comparison workload runs; every result must equal the same workload without kills.
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <fstream>
#include <iostream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "fuse/test_support.h"

namespace {

using namespace ward::fuse::testing;

using FuseRestart = Fixture;

// The pids of `parent`'s children (the file system ward started).
std::vector<pid_t> children_of(pid_t parent) {
  std::ifstream f("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children");
  std::vector<pid_t> out;
  for (pid_t p; f >> p;) out.push_back(p);
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  return {std::istreambuf_iterator<char>(f), {}};
}

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

TEST_F(FuseRestart, CrashIsInvisibleToTheApplication) {
  std::string log = dir_ + "/log";
  start({"--log", log}, {kHostile, "crash-once:" + dir_ + "/state", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  // The first instance dies on this GETATTR; the second answers the re-issued one.
  Exit app = stat_in_child(mnt_);
  ASSERT_TRUE(app.done);
  EXPECT_TRUE(WIFEXITED(app.status) && WEXITSTATUS(app.status) == 0) << app.status << slurp(log);
  EXPECT_EQ(mount_type(mnt_), "fuse.ward");
  std::string l = slurp(log);
  EXPECT_NE(l.find("file system failed: the file system exited (killed by Aborted)"), std::string::npos) << l;
  EXPECT_NE(l.find("1 requests re-issued"), std::string::npos) << l;
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
  Exit e = ward_exit();
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << stderr_;
}

TEST_F(FuseRestart, NewInstanceThatNegotiatesDifferentlyEndsTheMount) {
  start({}, {kHostile, "narrow-init:" + dir_ + "/state", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  Exit app = stat_in_child(mnt_);
  ASSERT_TRUE(app.done) << "stat hung";
  EXPECT_TRUE(WIFEXITED(app.status) && WEXITSTATUS(app.status) == 5) << app.status;
  Exit e = ward_exit();
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 3) << e.status << stderr_;
  EXPECT_NE(stderr_.find("negotiated INIT differently"), std::string::npos) << stderr_;
  EXPECT_EQ(mount_type(mnt_), "");
}

// A request that kills every instance is sent again to three, then answered EIO (it must not take
// the mount down by itself); the restart limit then ends the mount.
TEST_F(FuseRestart, PoisonRequestIsAnsweredAndTheLimitHolds) {
  start({"--restarts", "5"}, {kHostile, "crash-always", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  // Crash; restarts 1-3 each re-issue it and crash; restart 4 answers it EIO. The mount stays.
  Exit first = stat_in_child(mnt_);
  ASSERT_TRUE(first.done);
  EXPECT_TRUE(WIFEXITED(first.status) && WEXITSTATUS(first.status) == 5) << first.status;
  EXPECT_EQ(mount_type(mnt_), "fuse.ward");
  // Crash, restart 5, re-issued, crash: no restart left.
  Exit second = stat_in_child(mnt_);
  ASSERT_TRUE(second.done);
  EXPECT_TRUE(WIFEXITED(second.status) && WEXITSTATUS(second.status) == 5) << second.status;
  Exit e = ward_exit();
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 3) << e.status << stderr_;
  EXPECT_NE(stderr_.find("gave up after 5 restart(s)"), std::string::npos) << stderr_;
  EXPECT_EQ(mount_type(mnt_), "");
}

// ---- real file systems, killed at random moments ------------------------------------------------

// SIGKILLs ward's child (the file system) every 2..30 ms until stopped; counts the kills.
class Killer {
 public:
  Killer(pid_t ward, unsigned seed) : ward_(ward), rng_(seed) {
    thread_ = std::thread([this] { run(); });
  }
  ~Killer() { stop(); }
  int stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return kills_;
  }

 private:
  void run() {
    std::uniform_int_distribution<int> pause(2'000, 30'000);
    while (!stop_) {
      ::usleep(pause(rng_));
      for (pid_t p : children_of(ward_))
        if (::kill(p, SIGKILL) == 0) ++kills_;
    }
  }
  pid_t ward_;
  std::mt19937 rng_;
  std::atomic<bool> stop_{false};
  int kills_ = 0;
  std::thread thread_;
};

// The workload through ward without kills (the FuseReal.*SameResultsAsDirect tests show that
// equals the direct mount), then again and again with the file system SIGKILLed at random moments
// (it leaves the tree as it found it) until ward has restarted it at least 5 times: every run's
// log must equal the calm one. `prepare(base)` makes what the FS serves; `cmd(base)` mounts it on
// base + "/m".
void expect_kills_invisible(FuseReal& f, const std::function<void(const std::string&)>& prepare,
                            const std::function<std::vector<std::string>(const std::string&)>& cmd) {
  std::string a = f.dir_ + "/calm", b = f.dir_ + "/killed";
  for (const auto& base : {a, b}) {
    fs::create_directories(base + "/m");
    prepare(base);
  }
  f.start({}, cmd(a), a + "/m");
  ASSERT_TRUE(f.mounted(a + "/m")) << f.stderr_;
  std::string calm = run_workload(a + "/m");
  ASSERT_EQ(::umount2((a + "/m").c_str(), 0), 0);
  ASSERT_TRUE(f.ward_exit().done);

  std::string log = f.dir_ + "/log";
  f.start({"--log", log, "--restarts", "100000"}, cmd(b), b + "/m");
  ASSERT_TRUE(f.mounted(b + "/m")) << f.stderr_;
  // The kills start once the FS answered INIT (a stat waits for it): a failure before INIT is
  // not restarted (relay.h), and the mount appears before the FS has started.
  ASSERT_EQ(WEXITSTATUS(stat_in_child(b + "/m").status), 0);
  int kills = 0, runs = 0;
  {
    Killer killer(f.ward_, std::random_device{}());
    for (; runs < 20 && (runs < 2 || count(slurp(log), "restarted (restart") < 5); ++runs) {
      std::string killed = run_workload(b + "/m");
      ASSERT_EQ(killed, calm) << "run " << runs << "\n" << slurp(log);
    }
    kills = killer.stop();
  }
  int restarts = count(slurp(log), "restarted (restart");
  std::cout << runs << " runs, " << kills << " kills, " << restarts << " restarts\n";
  EXPECT_GT(kills, 0);
  EXPECT_GE(restarts, 5);
  EXPECT_EQ(mount_type(b + "/m"), "fuse.ward");
  ASSERT_EQ(::umount2((b + "/m").c_str(), 0), 0);
  Exit e = f.ward_exit();
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << f.stderr_;
}

TEST_F(FuseReal, FuseOverlayfsKillsAreInvisible) {
  if (!have("fuse-overlayfs")) GTEST_SKIP() << "fuse-overlayfs not installed (scripts/setup.sh)";
  expect_kills_invisible(
      *this,
      [](const std::string& base) {
        for (auto s : {"/l", "/u", "/w"}) fs::create_directories(base + s);
        std::ofstream(base + "/l/lower.txt") << "from the lower layer\n";
      },
      [](const std::string& base) {
        return std::vector<std::string>{"fuse-overlayfs", "-f", "-o",
                                        "lowerdir=" + base + "/l,upperdir=" + base + "/u,workdir=" + base + "/w",
                                        "{}"};
      });
}

// libfuse2, mounting itself through ward-fusermount, daemonizing (no -f): each restart runs the
// same command line again.
TEST_F(FuseReal, BindfsKillsAreInvisible) {
  if (!have("bindfs")) GTEST_SKIP() << "bindfs not installed (scripts/setup.sh)";
  expect_kills_invisible(
      *this,
      [](const std::string& base) {
        fs::create_directories(base + "/src");
        std::ofstream(base + "/src/existing.txt") << "already there\n";
      },
      [](const std::string& base) {
        return std::vector<std::string>{"bindfs", base + "/src", base + "/m"};
      });
}

}  // namespace
