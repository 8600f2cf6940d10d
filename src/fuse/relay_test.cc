// ward fuse as a process, on real mounts (needs root and /dev/fuse). FuseRelay.*: the relay
// against ward-fuse-hostile (bad input, lifecycle). FuseReal.*: unmodified Debian file systems
// (label real_extension), each workload's results compared with the same FS mounted directly.
// Every test leaves no mount and no process behind, even when it fails (Fixture::TearDown).
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>

#include <gtest/gtest.h>

#include "fuse/test_support.h"
#include "ward/fuse/relay.h"

namespace {

using namespace ward::fuse::testing;

using FuseRelay = Fixture;

TEST(FuseSubstitute, ReplacesEveryBraces) {
  auto out = ward::fuse::substitute({"fs", "{}", "-o", "x={}:{}"}, "/dev/fd/5");
  EXPECT_EQ(out, (std::vector<std::string>{"fs", "/dev/fd/5", "-o", "x=/dev/fd/5:/dev/fd/5"}));
}

// ward exits 3 with the cause in words; the mount is gone; a stat on it does not hang.
void expect_fs_failure(Fixture& f, Exit e, const std::string& words) {
  ASSERT_TRUE(e.done) << "ward did not exit";
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 3) << e.status << " " << f.stderr_;
  EXPECT_NE(f.stderr_.find(words), std::string::npos) << f.stderr_;
}

TEST_F(FuseRelay, FsThatExitsAtOnce) {
  start({}, {kHostile, "exit", "{}"});
  (void)mounted();  // ward may have failed and unmounted before the test looks
  expect_fs_failure(*this, ward_exit(), "exit status 7");
  EXPECT_EQ(mount_type(mnt_), "");
}

TEST_F(FuseRelay, CommandThatCannotRun) {
  start({}, {dir_ + "/no-such-fs", "{}"});
  Exit e = ward_exit();
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 1) << stderr_;
  EXPECT_NE(stderr_.find("cannot run"), std::string::npos) << stderr_;
  EXPECT_EQ(mount_type(mnt_), "");
}

TEST_F(FuseRelay, NeverAnswersInit) {
  start({"--init-timeout", "500"}, {kHostile, "silent-init", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  // An application waiting for INIT gets an answer, not a hang.
  EXPECT_TRUE(stat_in_child(mnt_).done) << "stat hung on the mount";
  expect_fs_failure(*this, ward_exit(), "no answer to INIT");
  EXPECT_EQ(mount_type(mnt_), "");
}

struct BadReply {
  const char* mode;
  const char* words;
  bool at_init;  // fails at INIT: ward may be gone before the test sees the mount
};

class FuseRelayBad : public Fixture, public ::testing::WithParamInterface<BadReply> {};

TEST_P(FuseRelayBad, ClearErrorNoHang) {
  // --restarts 0: the give-up path (restarts are FuseRestart.*'s).
  start({"--restarts", "0", "--request-timeout", "500", "--init-timeout", "5000"},
        {kHostile, GetParam().mode, "{}"});
  bool up = mounted();
  ASSERT_TRUE(up || GetParam().at_init) << stderr_;
  EXPECT_TRUE(stat_in_child(mnt_).done) << "stat hung on the mount";
  expect_fs_failure(*this, ward_exit(), GetParam().words);
  EXPECT_EQ(mount_type(mnt_), "");
}

INSTANTIATE_TEST_SUITE_P(
    Modes, FuseRelayBad,
    ::testing::Values(BadReply{"truncated", "truncated message", true},
                      BadReply{"oversized", "oversized message", true},
                      BadReply{"lying-len", "header length 4096", true},
                      BadReply{"wrong-unique", "not a request in flight", false},
                      BadReply{"unsent", "not a request in flight", true},
                      BadReply{"bad-size", "3-byte body", false},
                      BadReply{"hang", "no answer to GETATTR", false}),
    [](const auto& info) {
      std::string s = info.param.mode;
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    });

TEST_F(FuseRelay, HungRequestIsAnsweredWithEio) {
  start({"--restarts", "0", "--request-timeout", "300"}, {kHostile, "hang", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  Exit app = stat_in_child(mnt_);
  ASSERT_TRUE(app.done) << "stat hung on the mount";
  EXPECT_TRUE(WIFEXITED(app.status) && WEXITSTATUS(app.status) == 5) << app.status;
  expect_fs_failure(*this, ward_exit(), "no answer to GETATTR (opcode 3)");
}

// Mounts ward-fuse-hostile in `mode`, stats the root, unmounts: ward must exit 0.
void stat_then_unmount(Fixture& f, const char* mode) {
  f.start({}, {kHostile, mode, "{}"});
  ASSERT_TRUE(f.mounted()) << f.stderr_;
  Exit app = stat_in_child(f.mnt_);
  ASSERT_TRUE(app.done);
  EXPECT_EQ(WEXITSTATUS(app.status), 0);
  ASSERT_EQ(::umount2(f.mnt_.c_str(), 0), 0) << std::strerror(errno);
  Exit e = f.ward_exit();
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << f.stderr_;
}

TEST_F(FuseRelay, UnmountEndsWardAndFs) { stat_then_unmount(*this, "good"); }

// A reply that arrives as two datagrams (what a splice into the socket makes of a large reply)
// is joined, not rejected.
TEST_F(FuseRelay, SplitReplyIsJoined) { stat_then_unmount(*this, "split"); }

TEST_F(FuseRelay, SigtermUnmountsAndExitsZero) {
  start({}, {kHostile, "good", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  ::kill(ward_, SIGTERM);
  Exit e = ward_exit();
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << stderr_;
  EXPECT_EQ(mount_type(mnt_), "");
}

using FuseReal = Fixture;

TEST_F(FuseReal, FuseOverlayfsSameResultsAsDirect) {
  if (::access("/usr/bin/fuse-overlayfs", X_OK) != 0) GTEST_SKIP() << "fuse-overlayfs not installed (scripts/setup.sh)";
  auto layers = [&](const std::string& name) {
    std::string b = dir_ + "/" + name;
    for (auto s : {"/l", "/u", "/w", "/m"}) fs::create_directories(b + s);
    std::ofstream(b + "/l/lower.txt") << "from the lower layer\n";
    return b;
  };
  // Direct: fuse-overlayfs mounts itself (libfuse3, fusermount3/mount(2)), daemonized.
  std::string a = layers("direct");
  mounts_.push_back(a + "/m");
  std::string opt = "lowerdir=" + a + "/l,upperdir=" + a + "/u,workdir=" + a + "/w";
  Exit direct_mount = in_child([&] {
    execl("/usr/bin/fuse-overlayfs", "fuse-overlayfs", "-o", opt.c_str(), (a + "/m").c_str(), nullptr);
    return 127;
  });
  ASSERT_TRUE(direct_mount.done && WEXITSTATUS(direct_mount.status) == 0);
  std::string direct = run_workload(a + "/m");
  ASSERT_EQ(::umount2((a + "/m").c_str(), 0), 0);

  std::string b = layers("ward");
  start({}, {"fuse-overlayfs", "-f", "-o", "lowerdir=" + b + "/l,upperdir=" + b + "/u,workdir=" + b + "/w", "{}"},
        b + "/m");
  ASSERT_TRUE(mounted(b + "/m")) << stderr_;
  std::string relayed = run_workload(b + "/m");
  EXPECT_EQ(relayed, direct);
  EXPECT_NE(direct.find("big-read"), std::string::npos);
  ASSERT_EQ(::umount2((b + "/m").c_str(), 0), 0);
  Exit e = ward_exit();
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << stderr_;
  std::cout << direct;
}

}  // namespace
