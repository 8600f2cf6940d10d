// ward-fsconform and fio's verify runs on real mounts (needs root and /dev/fuse; label
// real_extension). FsConform.*: the suite on a fresh tmpfs (everything must pass: a check that
// fails there is a bug in the check) and on a plain directory of /tmp (listed). FsConformReal.*:
// fuse-overlayfs mounted directly and through `ward fuse`; the checks that pass through ward must
// be exactly those that pass directly. FioVerify.*: fio writes and verifies through both.
// "With kills" is a parameter: a RandomKiller SIGKILLs the FS process while the suite or fio runs
// (ward restarts it). fio's runs always; the suite's is part of `make stress` (WARD_CONFORM_KILLS=1):
// it takes longer and now and then differs from the direct mount (docs/fuse.md, Conformance).
// Every test leaves no mount, process or directory (Fixture::TearDown).
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include <gtest/gtest.h>

#include "fuse/test_support.h"

namespace {

using namespace ward::fuse::testing;

const std::string kConform = WARD_BINARY_DIR "/ward-fsconform";
constexpr auto kSuiteLimit = 600s;

enum class Where { direct, ward };

// One run of ward-fsconform: each check's verdict ("pass", "FAIL", "skip") and the summary.
struct Suite {
  std::map<std::string, std::string> verdict;
  std::string out;
  int passed = -1, failed = -1, skipped = -1;
  int status = -1;  // exit status, -1 if it did not exit by itself

  [[nodiscard]] std::set<std::string> passing() const {
    std::set<std::string> s;
    for (auto& [name, v] : verdict)
      if (v == "pass") s.insert(name);
    return s;
  }
  [[nodiscard]] std::string not_passing() const {
    std::string s;
    for (auto& line : lines())
      if (line.starts_with("FAIL ") || line.starts_with("skip ")) s += "  " + line + "\n";
    return s;
  }
  [[nodiscard]] std::vector<std::string> lines() const {
    std::vector<std::string> v;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
  }
};

Suite run_suite(const std::string& dir) {
  Captured c = run_capture({kConform, "--timeout", "60", dir}, kSuiteLimit);
  Suite s;
  s.out = c.out;
  if (c.exit.done && WIFEXITED(c.exit.status)) s.status = WEXITSTATUS(c.exit.status);
  for (auto& l : s.lines()) {
    for (const char* v : {"pass ", "FAIL ", "skip "})
      if (l.starts_with(v)) s.verdict[l.substr(5, l.find(':') == std::string::npos ? std::string::npos : l.find(':') - 5)] =
          std::string(v, 4);
    std::sscanf(l.c_str(), "%d passed, %d failed, %d skipped", &s.passed, &s.failed, &s.skipped);
  }
  return s;
}

bool kills_enabled() {
  const char* e = std::getenv("WARD_CONFORM_KILLS");
  return e && std::string(e) == "1";
}

constexpr const char* kNoRestart =
    "with kills: a long stress run, part of `make stress` (WARD_CONFORM_KILLS=1); known to differ "
    "from the direct mount now and then (docs/fuse.md, Conformance)";

class ConformFixture : public Fixture {
 protected:
  void SetUp() override {
    Fixture::SetUp();
    if (IsSkipped()) return;
    // The permission checks run as nobody, who must be able to search down to the mount.
    ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  }

 public:
  // fuse-overlayfs's layers under dir_/name; the mount point.
  std::string layers(const std::string& name) {
    std::string b = dir_ + "/" + name;
    for (auto s : {"/l", "/u", "/w", "/m"}) fs::create_directories(b + s);
    return b + "/m";
  }
  static std::string overlay_opts(const std::string& m) {
    std::string b = m.substr(0, m.size() - 2);
    return "lowerdir=" + b + "/l,upperdir=" + b + "/u,workdir=" + b + "/w";
  }

  // fuse-overlayfs on dir_/name, directly (it mounts itself and daemonizes) or through
  // `ward fuse`. Mounted directly, as root, it asks for allow_other and default_permissions
  // (see /proc/mounts); through ward, ward mounts, so ward is given the same two options.
  std::string mount(Where where, const std::string& name, bool kills = false) {
    std::string m = layers(name);
    if (where == Where::direct) {
      mounts_.push_back(m);
      std::string opt = overlay_opts(m);
      Exit e = in_child([&] {
        ::execl("/usr/bin/fuse-overlayfs", "fuse-overlayfs", "-o", opt.c_str(), m.c_str(), nullptr);
        return 127;
      });
      if (!e.done || !WIFEXITED(e.status) || WEXITSTATUS(e.status) != 0) return "";
      return m;
    }
    std::vector<std::string> opts{"--allow-other", "--default-permissions"};
    if (kills) opts.insert(opts.end(), {"--restarts", "1000000"});  // the killer sets the pace, not a limit
    start(opts, {"fuse-overlayfs", "-f", "-o", overlay_opts(m), "{}"}, m);
    if (!mounted(m)) return "";
    // Serving before the first kill (a file system that never answered INIT is not restarted).
    Exit up = stat_in_child(m);
    return up.done && WIFEXITED(up.status) && WEXITSTATUS(up.status) == 0 ? m : "";
  }

  // Unmounts; through ward, ward must then exit 0 (unless kills made it fail: `killed`).
  void unmount(Where where, const std::string& m, bool killed) {
    if (where == Where::direct) {
      ::umount2(m.c_str(), killed ? MNT_DETACH : 0);
      return;
    }
    if (!mount_type(m).empty()) {
      EXPECT_EQ(::umount2(m.c_str(), 0), 0) << std::strerror(errno);
    }
    Exit e = ward_exit();
    ASSERT_TRUE(e.done) << "ward did not exit after the unmount";
    if (!killed) {
      EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << stderr_;
    }
  }

  // A killer of the FS behind `m`, or none when `kills` is off.
  std::unique_ptr<RandomKiller> killer(Where where, const std::string& m, bool kills) {
    if (!kills) return nullptr;
    pid_t wardpid = ward_;
    std::function<pid_t()> find = where == Where::ward ? std::function<pid_t()>([wardpid] { return child_of(wardpid); })
                                                       : std::function<pid_t()>([m] { return process_with_arg(m); });
    return std::make_unique<RandomKiller>(find, 20ms, 300ms, 12);
  }

  // The suite on fuse-overlayfs mounted `where`, with or without kills.
  Suite suite_on(Where where, const std::string& name, bool kills) {
    std::string m = mount(where, name, kills);
    if (m.empty()) {
      ADD_FAILURE() << "fuse-overlayfs did not mount " << (where == Where::ward ? "through ward: " + stderr_ : "");
      return {};
    }
    Suite s;
    int k = 0;
    {
      auto kill = killer(where, m, kills);
      s = run_suite(m);
      k = kill ? kill->kills() : 0;
    }
    unmount(where, m, kills);
    if (kills) {
      std::cout << "kills of the FS during the run: " << k << "\n";
      EXPECT_GT(k, 0) << "the suite ended before any kill: the run tested nothing more than without kills";
    }
    return s;
  }
};

bool have_overlayfs() { return ::access("/usr/bin/fuse-overlayfs", X_OK) == 0; }

using FsConform = ConformFixture;

// On a tmpfs of its own every check must pass (or skip for a reason the machine gives): a
// failure here is a wrong check, not a file system's fault.
TEST_F(FsConform, TmpfsPassesEveryCheck) {
  std::string t = dir_ + "/tmpfs";
  fs::create_directory(t);
  ASSERT_EQ(::mount("tmpfs", t.c_str(), "tmpfs", 0, "size=8g,mode=0755"), 0) << std::strerror(errno);
  mounts_.push_back(t);
  Suite s = run_suite(t);
  std::cout << "tmpfs: " << s.passed << " passed, " << s.failed << " failed, " << s.skipped << " skipped\n"
            << s.not_passing();
  EXPECT_EQ(s.status, 0) << s.out;
  EXPECT_EQ(s.failed, 0) << s.out;
  // Every check passes but those the machine keeps from running: the permission checks skip
  // when uid 65534 cannot reach the directory (fresh-check's chroot has a 0700 root).
  int unreachable = 0;
  for (const auto& l : s.lines())
    if (l.starts_with("skip ") && l.find("cannot reach the directory") != std::string::npos) ++unreachable;
  EXPECT_EQ(s.passed + unreachable, static_cast<int>(s.verdict.size())) << s.out;
  EXPECT_GE(s.passed, 60) << s.out;
  EXPECT_EQ(fs::directory_iterator(t), fs::directory_iterator()) << "the suite left files on the tmpfs";
}

// A plain directory on whatever /tmp is (ext4 here): listed, not judged, since it depends on the
// machine; the suite must run to its summary and clean up.
TEST_F(FsConform, PlainDirectoryRunsAndCleansUp) {
  std::string p = dir_ + "/plain";
  fs::create_directory(p);
  ::chmod(p.c_str(), 0755);
  Suite s = run_suite(p);
  std::cout << "plain " << p << ": " << s.passed << " passed, " << s.failed << " failed, " << s.skipped
            << " skipped\n"
            << s.not_passing();
  EXPECT_TRUE(s.status == 0 || s.status == 1) << s.out;
  EXPECT_GE(s.passed, 0) << "no summary line:\n" << s.out;
  EXPECT_EQ(fs::directory_iterator(p), fs::directory_iterator()) << "the suite left files behind";
}

// A directory that does not exist is bad usage (2), and so is an unknown option; --only that
// matches nothing too.
TEST(FsConformUsage, BadUsageExitsTwo) {
  for (auto args : std::vector<std::vector<std::string>>{{kConform, "/no/such/dir"},
                                                         {kConform, "--bogus", "/tmp"},
                                                         {kConform},
                                                         {kConform, "--only", "no-such-check", "/tmp"}}) {
    Captured c = run_capture(args, 60s);
    ASSERT_TRUE(c.exit.done);
    EXPECT_TRUE(WIFEXITED(c.exit.status) && WEXITSTATUS(c.exit.status) == 2) << args.back() << ": " << c.out;
  }
  Captured list = run_capture({kConform, "--list", "--only", "rename"}, 60s);
  EXPECT_NE(list.out.find("rename.self"), std::string::npos) << list.out;
  EXPECT_EQ(list.out.find("open.excl"), std::string::npos) << list.out;
}

// A file system that never answers: the suite ends by its deadlines (a killed child per step),
// it does not hang, and says why.
TEST_F(FsConform, HungFileSystemEndsTheSuite) {
  start({"--request-timeout", "120000"}, {kHostile, "hang", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  Captured c = run_capture({kConform, "--timeout", "2", mnt_}, 60s);
  ASSERT_TRUE(c.exit.done) << "ward-fsconform hung on a hung file system";
  EXPECT_TRUE(WIFEXITED(c.exit.status) && WEXITSTATUS(c.exit.status) == 2) << c.exit.status << c.out;
  EXPECT_NE(c.out.find("no answer within 2 s"), std::string::npos) << c.out;
}

class FsConformReal : public ConformFixture, public ::testing::WithParamInterface<bool> {};

// Checks that ward may make pass where the file system alone fails them, each for a reason of
// ward's own: with --hide-unlinked an unlinked open file is kept under a hidden name, whose
// st_nlink ward reports as 0 (docs/fuse.md, "Unlinked while open"); fuse-overlayfs itself says 1.
const std::set<std::string> kWardFixes = {"unlink.open_file"};

// The checks that pass through `ward fuse` are those that pass on the direct mount, plus at most
// the ones ward is known to fix (kWardFixes); any other difference either way is a failure.
TEST_P(FsConformReal, OverlayfsThroughWardPassesWhatDirectPasses) {
  const bool kills = GetParam();
  if (!have_overlayfs()) GTEST_SKIP() << "fuse-overlayfs not installed (scripts/setup.sh)";
  if (kills && !kills_enabled()) GTEST_SKIP() << kNoRestart;
  Suite direct = suite_on(Where::direct, "direct", false);
  Suite relayed = suite_on(Where::ward, "ward", kills);
  std::cout << "fuse-overlayfs direct:       " << direct.passed << " passed, " << direct.failed << " failed, "
            << direct.skipped << " skipped\n"
            << direct.not_passing();
  std::cout << "fuse-overlayfs through ward" << (kills ? " (with kills)" : "") << ": " << relayed.passed
            << " passed, " << relayed.failed << " failed, " << relayed.skipped << " skipped\n"
            << relayed.not_passing();
  if (kills) {
    Suite bare = suite_on(Where::direct, "direct-killed", true);
    std::cout << "fuse-overlayfs direct with kills: " << bare.passed << " passed, " << bare.failed << " failed\n";
  }
  ASSERT_GE(direct.passed, 0) << "the direct run has no summary:\n" << direct.out;
  std::set<std::string> lost, gained;
  for (const auto& name : direct.passing())
    if (!relayed.passing().contains(name)) lost.insert(name);
  for (const auto& name : relayed.passing())
    if (!direct.passing().contains(name) && !kWardFixes.contains(name)) gained.insert(name);
  EXPECT_TRUE(lost.empty()) << "passing directly, not through ward: " << lost.size() << "\ndirect:\n"
                            << direct.out << "through ward:\n" << relayed.out;
  EXPECT_TRUE(gained.empty()) << "passing through ward only, for no known reason: " << gained.size();
  EXPECT_EQ(relayed.verdict.size(), direct.verdict.size());
}

INSTANTIATE_TEST_SUITE_P(Kills, FsConformReal, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "WithKills" : "NoKills"; });

struct FioCase {
  Where where;
  bool kills;
};

void PrintTo(const FioCase& c, std::ostream* os) {
  *os << (c.where == Where::direct ? "direct" : "through ward") << (c.kills ? ", with kills" : "");
}

class FioVerify : public ConformFixture, public ::testing::WithParamInterface<FioCase> {};

// fio writes 32 MiB at random 4 KiB offsets with a crc32c in every block, then reads it all
// back and checks each block: it must find no bad block, directly and through ward.
TEST_P(FioVerify, RandomWritesVerify) {
  const auto [where, kills] = GetParam();
  if (!have_overlayfs()) GTEST_SKIP() << "fuse-overlayfs not installed (scripts/setup.sh)";
  if (::access("/usr/bin/fio", X_OK) != 0) GTEST_SKIP() << "fio not installed (scripts/setup.sh)";
  std::string m = mount(where, "fio", kills);
  ASSERT_FALSE(m.empty()) << "fuse-overlayfs did not mount " << stderr_;
  Captured c;
  int k = 0;
  {
    auto kill = killer(where, m, kills);
    c = run_capture({"/usr/bin/fio", "--name=v", "--directory=" + m, "--rw=randwrite", "--bs=4k", "--size=32m",
                     "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--ioengine=psync",
                     "--verify_state_save=0"},
                    300s);
    k = kill ? kill->kills() : 0;
  }
  unmount(where, m, kills);
  if (kills) {
    EXPECT_GT(k, 0) << "fio ended before any kill: the run tested nothing more than without kills";
  }
  ASSERT_TRUE(c.exit.done) << "fio did not finish:\n" << c.out;
  EXPECT_TRUE(WIFEXITED(c.exit.status) && WEXITSTATUS(c.exit.status) == 0) << c.out;
  EXPECT_NE(c.out.find("err= 0"), std::string::npos) << c.out;
  EXPECT_EQ(c.out.find("verify:"), std::string::npos) << c.out;  // fio's verify failures start so
}

INSTANTIATE_TEST_SUITE_P(Where, FioVerify,
                         ::testing::Values(FioCase{Where::direct, false}, FioCase{Where::ward, false},
                                           FioCase{Where::ward, true}),
                         [](const auto& info) {
                           std::string s = info.param.where == Where::direct ? "Direct" : "ThroughWard";
                           return s + (info.param.kills ? "WithKills" : "");
                         });

}  // namespace
