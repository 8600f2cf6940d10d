// ward fuse as a process, on real mounts (needs root and /dev/fuse). FuseRelay.*: the relay
// against ward-fuse-hostile (bad input, lifecycle). FuseReal.*: unmodified Debian file systems
// (label real_extension), each workload's results compared with the same FS mounted directly.
// Every test leaves no mount and no process behind, even when it fails (Fixture::TearDown).
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <fstream>
#include <iostream>

#include <gtest/gtest.h>

#include "fuse/fd_passing.h"
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

// A file system writes what it holds once the mount is gone (fuse-zip its archive, s3backer its
// block cache): ward gives it --exit-timeout for that. Before, ward took the unmount's hang-up on
// /dev/fuse for the end of the wait and killed it at once: fuse-zip wrote no archive.
TEST_F(FuseRelay, AnUnmountGivesTheFileSystemItsExitTimeoutToFinish) {
  const std::string state = dir_ + "/state";
  start({"--exit-timeout", "20000"}, {kHostile, "slow-exit:" + state, "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  Exit app = stat_in_child(mnt_);
  ASSERT_TRUE(app.done);
  EXPECT_EQ(WEXITSTATUS(app.status), 0);
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
  Exit e = ward_exit(30s);
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << stderr_;
  EXPECT_EQ(::access((state + ".exited").c_str(), F_OK), 0) << "the file system was killed before it finished";
}

// The file system sends INVAL_ENTRY for the root right before its RENAME reply. The kernel takes
// that notification only once the rename lets go of the root's lock, i.e. once the reply behind
// it has arrived: ward must pass replies on while a notification waits (notifier.h). Before,
// ward's only thread waited in the kernel for good (unkillable, past every deadline; the test
// then ended it by aborting the connection).
TEST_F(FuseRelay, ANotificationWaitingForALockDoesNotHoldUpReplies) {
  start({"--request-timeout", "60000"}, {kHostile, "notify-rename", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  pid_t app = ::fork();
  if (app == 0) ::_exit(::rename((mnt_ + "/a").c_str(), (mnt_ + "/b").c_str()) == 0 ? 0 : 1);
  Exit renamed = wait_or_abort(app, 10s, mnt_);
  ASSERT_TRUE(renamed.done) << "the rename's reply never reached the kernel";
  EXPECT_TRUE(WIFEXITED(renamed.status) && WEXITSTATUS(renamed.status) == 0) << renamed.status;
  Exit app2 = stat_in_child(mnt_);
  ASSERT_TRUE(app2.done);
  EXPECT_EQ(WEXITSTATUS(app2.status), 0);
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
  Exit e = ward_exit();
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << stderr_;
}

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

// Unmodified Debian file systems (label real_extension). libfuse2 ones (and any that mount
// themselves) get no `{}` in the command, so ward runs them in a namespace where fusermount is
// ward-fusermount (src/fuse/launch.h). Their direct mounts daemonize; teardown also ends whatever
// still mentions the work directory.

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


TEST_F(FuseReal, BindfsSameResultsAsDirect) {
  if (!have("bindfs")) GTEST_SKIP() << "bindfs not installed (scripts/setup.sh)";
  std::string log = direct_vs_ward([](const std::string& base) { fs::create_directories(base + "/src"); },
                                   [](const std::string& base) {
                                     return std::vector<std::string>{"bindfs", base + "/src", base + "/m"};
                                   });
  // bindfs passes everything through: the whole workload succeeds.
  EXPECT_NE(log.find("big-read 13722443963755171459 expect 13722443963755171459"), std::string::npos) << log;
  EXPECT_NE(log.find("readlink 1 g"), std::string::npos) << log;
}

// fuse-zip creates the archive when it does not exist, and keeps everything in memory until it
// is unmounted; its results may differ from a POSIX file system (they are compared, not judged).
TEST_F(FuseReal, FuseZipSameResultsAsDirect) {
  if (!have("fuse-zip")) GTEST_SKIP() << "fuse-zip not installed (scripts/setup.sh)";
  std::string log = direct_vs_ward([](const std::string&) {},
                                   [](const std::string& base) {
                                     return std::vector<std::string>{"fuse-zip", base + "/new.zip", base + "/m"};
                                   });
  EXPECT_NE(log.find("read hello world"), std::string::npos) << log;
}

TEST_F(FuseReal, Fuse2fsSameResultsAsDirect) {
  if (!have("fuse2fs") || !have("mkfs.ext4")) GTEST_SKIP() << "fuse2fs or mkfs.ext4 not installed (scripts/setup.sh)";
  std::string log = direct_vs_ward(
      [](const std::string& base) { ASSERT_TRUE(make_ext4_image(base + "/ext4.img")); },
      [](const std::string& base) {
        return std::vector<std::string>{"fuse2fs", base + "/ext4.img", base + "/m", "-o", "fakeroot"};
      });
  EXPECT_NE(log.find("big-read 13722443963755171459 expect 13722443963755171459"), std::string::npos) << log;
  EXPECT_NE(log.find("lost+found"), std::string::npos) << log;
}

// The one process left of a daemonized file system (its first process exits once the daemon is
// up, which may be a moment after the mount answers): its pid, or -1 if there is not exactly one.
pid_t sole_daemon(const std::string& needle, const std::string& comm) {
  auto end = Clock::now() + 10s;
  std::vector<pid_t> found;
  while (Clock::now() < end) {
    found = processes_mentioning(needle, comm);
    if (found.size() == 1) return found[0];
    ::usleep(10'000);
  }
  return -1;
}

// A daemonized file system (no -f: its first process exits 0 once the daemon serves) keeps
// working; SIGKILL to the daemon is the file system failing: ward exits 3, no mount, no process.
TEST_F(FuseReal, KilledDaemonIsAFailure) {
  if (!have("bindfs")) GTEST_SKIP() << "bindfs not installed (scripts/setup.sh)";
  fs::create_directories(dir_ + "/src");
  std::ofstream(dir_ + "/src/file") << "served by the daemon\n";
  start({"--restarts", "0"}, {"bindfs", dir_ + "/src", mnt_});  // restarts: restart_test.cc
  ASSERT_TRUE(mounted()) << stderr_;
  EXPECT_EQ(read_all(mnt_ + "/file"), "served by the daemon\n");
  pid_t daemon = sole_daemon(dir_ + "/src", "bindfs");
  ASSERT_GT(daemon, 0) << "expected one bindfs daemon";
  // The leader is gone: what serves is the daemon, in a session of its own.
  EXPECT_EQ(::getsid(daemon), daemon);
  EXPECT_EQ(read_all(mnt_ + "/file"), "served by the daemon\n");
  ASSERT_EQ(::kill(daemon, SIGKILL), 0);
  expect_fs_failure(*this, ward_exit(), "killed by");
  EXPECT_EQ(mount_type(mnt_), "");
  EXPECT_TRUE(processes_gone(dir_));
}

// The same daemon ends cleanly when the mount is unmounted: ward exits 0 and nothing is left.
TEST_F(FuseReal, DaemonEndsWithUnmount) {
  if (!have("bindfs")) GTEST_SKIP() << "bindfs not installed (scripts/setup.sh)";
  fs::create_directories(dir_ + "/src");
  start({"--restarts", "0"}, {"bindfs", dir_ + "/src", mnt_});  // restarts: restart_test.cc
  ASSERT_TRUE(mounted()) << stderr_;
  EXPECT_EQ(stat_in_child(mnt_).status, 0);
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
  Exit e = ward_exit();
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << stderr_;
  EXPECT_TRUE(processes_gone(dir_));
}

// libfuse3 with `{}` daemonizes too (fuse-overlayfs without -f): followed the same way.
TEST_F(FuseReal, DaemonizingLibfuse3WithFd) {
  if (!have("fuse-overlayfs")) GTEST_SKIP() << "fuse-overlayfs not installed (scripts/setup.sh)";
  for (auto s : {"/l", "/u", "/w"}) fs::create_directories(dir_ + s);
  std::ofstream(dir_ + "/l/lower.txt") << "lower\n";
  start({"--restarts", "0"},
        {"fuse-overlayfs", "-o", "lowerdir=" + dir_ + "/l,upperdir=" + dir_ + "/u,workdir=" + dir_ + "/w", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  EXPECT_EQ(read_all(mnt_ + "/lower.txt"), "lower\n");
  pid_t daemon = sole_daemon("lowerdir=" + dir_, "fuse-overlayfs");
  ASSERT_GT(daemon, 0) << "expected one fuse-overlayfs daemon";
  ASSERT_EQ(::kill(daemon, SIGKILL), 0);
  expect_fs_failure(*this, ward_exit(), "killed by");
  EXPECT_EQ(mount_type(mnt_), "");
}

// READ replies bigger than the 16 pipe buffers one splice into the socket sends as a datagram
// arrive whole: the file system's pipes are capped at 16 buffers (launch.cc's filter), so libfuse
// writes such a reply with one writev instead of splicing it in pieces that another thread's
// message could come between (docs/fuse.md, "Design: what the FS is given"). Without the cap
// fuse-overlayfs splices its 64 KiB READ replies and ward joins hundreds of pieces here.
TEST_F(FuseReal, LargeReadRepliesAreOneDatagram) {
  if (!have("fuse-overlayfs")) GTEST_SKIP() << "fuse-overlayfs not installed (scripts/setup.sh)";
  for (auto s : {"/l", "/u", "/w"}) fs::create_directories(dir_ + s);
  start({"--restarts", "0", "--log", "-"},
        {"fuse-overlayfs", "-f", "-o", "lowerdir=" + dir_ + "/l,upperdir=" + dir_ + "/u,workdir=" + dir_ + "/w", "{}"});
  ASSERT_TRUE(mounted()) << stderr_;
  const std::string file = mnt_ + "/big";
  Exit app = in_child([&] {
    std::string data(8 << 20, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 2654435761u >> 13);
    int fd = ::open(file.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0 || ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size()) || ::fsync(fd) != 0)
      return 1;
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // the reads below go to the file system
    ::close(fd);
    return read_all(file) == data ? 0 : 2;
  });
  ASSERT_TRUE(app.done) << "the read hung";
  EXPECT_TRUE(WIFEXITED(app.status) && WEXITSTATUS(app.status) == 0) << app.status;
  ASSERT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
  Exit e = ward_exit();
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << stderr_;
  EXPECT_NE(stderr_.find(" replies, 0 datagrams joined"), std::string::npos) << stderr_;
}

// A file system told to mount somewhere other than ward's mount point is refused by the
// stand-in, in words, and fails at once (not at the INIT deadline).
TEST_F(FuseReal, OtherMountPointIsRefused) {
  if (!have("bindfs")) GTEST_SKIP() << "bindfs not installed (scripts/setup.sh)";
  fs::create_directories(dir_ + "/src");
  fs::create_directories(dir_ + "/elsewhere");
  start({"--init-timeout", "20000"}, {"bindfs", "-f", dir_ + "/src", dir_ + "/elsewhere"});
  (void)mounted();
  Exit e = ward_exit(10s);
  expect_fs_failure(*this, e, "the file system exited");
  EXPECT_NE(stderr_.find("but ward fuse holds " + mnt_), std::string::npos) << stderr_;
  EXPECT_EQ(mount_type(mnt_), "");
  EXPECT_EQ(mount_type(dir_ + "/elsewhere"), "");
}

// The stand-in does nothing outside ward fuse.
TEST(FuseStandIn, RefusesOutsideWard) {
  Exit e = in_child([] {
    ::unsetenv("WARD_FUSE_FD");
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    std::string p = WARD_BINARY_DIR "/ward-fusermount";
    execl(p.c_str(), "fusermount", "-o", "rw", "--", "/tmp", nullptr);
    return 127;
  });
  ASSERT_TRUE(e.done);
  EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 1) << e.status;
}

// Runs the stand-in below a shell whose initial environment names ward's socket, as the process
// ward started does; `env(comm)` gives the words /usr/bin/env sets the stand-in's own environment
// with (comm: the library's socket, passed as _FUSE_COMMFD). "" when the descriptor the stand-in
// sent over comm is ward's socket itself (not merely a socket), else what went wrong.
std::string standin_sends_wards_socket(const std::function<std::string(int comm)>& env) {
  int relay[2], comm[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, relay) != 0 || ::socketpair(AF_UNIX, SOCK_STREAM, 0, comm) != 0)
    return "socketpair";
  char mp[PATH_MAX];
  if (!::realpath("/tmp", mp)) return "realpath";
  const std::string standin = WARD_BINARY_DIR "/ward-fusermount";
  // `; exit $?` keeps the shell alive as the stand-in's parent (no exec of the last command).
  const std::string script = "/usr/bin/env " + env(comm[0]) + " " + standin + " -o rw -- " + mp + "; exit $?";
  Exit e = in_child([&] {
    ::close(comm[1]);
    const std::string fd = "WARD_FUSE_FD=" + std::to_string(relay[0]);
    const std::string where = std::string("WARD_FUSE_MOUNTPOINT=") + mp;
    char* envp[] = {const_cast<char*>(fd.c_str()), const_cast<char*>(where.c_str()), nullptr};
    execle("/bin/sh", "sh", "-c", script.c_str(), nullptr, envp);
    return 127;
  });
  ::close(comm[0]);
  std::string bad;
  const int got = ward::fuse::detail::recv_fd(comm[1], MSG_DONTWAIT);
  struct stat want {}, have {};
  if (!e.done || !WIFEXITED(e.status) || WEXITSTATUS(e.status) != 0) bad = "the stand-in failed: " + std::to_string(e.status);
  else if (got < 0) bad = std::string("no descriptor from the stand-in: ") + std::strerror(errno);
  else if (::fstat(relay[0], &want) != 0 || ::fstat(got, &have) != 0 || have.st_ino != want.st_ino)
    bad = "the stand-in sent another socket than ward's";
  for (int fd : {got, relay[0], relay[1], comm[1]})
    if (fd >= 0) ::close(fd);
  return bad;
}

// A mount library that runs fusermount with an environment of its own (go-fuse passes
// `_FUSE_COMMFD` alone, and only its own socket) still gets ward's socket: the stand-in finds the
// ancestor ward started and takes the descriptor from it.
TEST(FuseStandIn, FindsWardsSocketInAnAncestorWhenTheEnvironmentIsCleared) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (pidfd_getfd of another process)";
  EXPECT_EQ(standin_sends_wards_socket([](int comm) { return "-i _FUSE_COMMFD=" + std::to_string(comm); }), "");
}

// The environment is inherited, and a mount library may have put its own socket at the number
// WARD_FUSE_FD names (rclone's bazil fuse: its socket at 3, the environment kept). Before, the
// stand-in sent the library its own socket back ("fuse connection closed without init").
TEST(FuseStandIn, IgnoresAnInheritedDescriptorTheLibraryReused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (pidfd_getfd of another process)";
  EXPECT_EQ(standin_sends_wards_socket([](int comm) {
              return "WARD_FUSE_FD=" + std::to_string(comm) + " _FUSE_COMMFD=" + std::to_string(comm);
            }),
            "");
}

}  // namespace
