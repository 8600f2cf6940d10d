// The sandbox of `ward fuse` (src/fuse/sandbox.h, docs/fuse.md "Sandbox"), seen from inside: the
// file system is ward-fuse-hostile's `probe` mode, which opens host paths (read, then write) and
// reports each errno as the size of a file on the mount. So the test reads, from outside, what
// the file system could see. The unmodified file systems (FuseReal.*, FuseRestart.*) run with the
// sandbox's default in relay_test.cc and restart_test.cc.
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "fuse/test_support.h"

namespace {

using namespace ward::fuse::testing;

constexpr long kSeen = 0;                      // opened for reading and for writing
constexpr long kReadOnly = EROFS;              // read yes, write EROFS
constexpr long kAbsent = 1000 * ENOENT + ENOENT;  // not there at all
constexpr long kDirectory = EISDIR;            // a directory: read yes, write EISDIR

class FuseSandbox : public Fixture {
 protected:
  void TearDown() override {
    ::unsetenv("WARD_PROBE");
    Fixture::TearDown();
  }

 public:
  std::string make_file(const std::string& rel, const std::string& text = "x\n") {
    std::string p = dir_ + "/" + rel;
    fs::create_directories(fs::path(p).parent_path());
    std::ofstream(p) << text;
    return p;
  }

  // Mounts the probe with `opts` and extra command words `args`, and returns what it saw of each
  // of `paths` (the probe's code, -1 when the mount could not answer).
  std::vector<long> probe(const std::vector<std::string>& opts, const std::vector<std::string>& args,
                          const std::vector<std::string>& paths) {
    std::string list;
    for (const auto& p : paths) list += (list.empty() ? "" : ":") + p;
    ::setenv("WARD_PROBE", list.c_str(), 1);
    std::vector<std::string> cmd{kHostile, "probe", "{}"};
    cmd.insert(cmd.end(), args.begin(), args.end());
    start(opts, cmd);
    std::vector<long> out(paths.size(), -1);
    if (!mounted()) {
      ADD_FAILURE() << "not mounted: " << (ward_exit(), stderr_);
      return out;
    }
    for (std::size_t i = 0; i < paths.size(); ++i) {
      // Through a bounded child (a hung mount fails the test instead of hanging it), the size
      // coming back on a pipe.
      int p[2];
      if (::pipe(p) != 0) break;
      std::string at = mnt_ + "/" + std::to_string(i);
      Exit e = in_child([&] {
        struct stat st;
        long v = ::stat(at.c_str(), &st) == 0 ? static_cast<long>(st.st_size) : -1;
        return ::write(p[1], &v, sizeof v) == sizeof v ? 0 : 1;
      });
      ::close(p[1]);
      long v = -1;
      if (e.done && ::read(p[0], &v, sizeof v) == sizeof v) out[i] = v;
      ::close(p[0]);
    }
    EXPECT_EQ(::umount2(mnt_.c_str(), 0), 0) << std::strerror(errno);
    Exit e = ward_exit();
    EXPECT_TRUE(e.done && WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << stderr_;
    return out;
  }
};

// Only what it is shown: --see read-write, --see-ro read-only, the system's /etc pieces
// read-only (/etc/hosts too, where the host has one: a network file system needs it); a sibling
// directory, /etc/shadow, /root and the test's own process are absent.
TEST_F(FuseSandbox, SeesOnlyWhatItIsShown) {
  std::string seen = make_file("seen/f"), ro = make_file("ro/f"), hidden = make_file("hidden/f");
  std::string me = "/proc/" + std::to_string(::getpid()) + "/status";
  auto got = probe({"--no-auto-see", "--see", dir_ + "/seen", "--see-ro", dir_ + "/ro"}, {},
                   {seen, ro, hidden, "/etc/shadow", "/etc/passwd", "/root", me, "/dev/null", "/etc/hosts"});
  const long hosts = ::access("/etc/hosts", R_OK) == 0 ? kReadOnly : kAbsent;
  EXPECT_EQ(got, (std::vector<long>{kSeen, kReadOnly, kAbsent, kAbsent, kReadOnly, kAbsent, kAbsent, kSeen, hosts}));
}

// What would take it out of its root is refused: mount(2) (a devtmpfs would show every disk)
// and device nodes; umount2 pretends to succeed and uncovers nothing.
// A pass-through FS may store device nodes (mknod succeeds: pjdfstest's mknod cases pass), but no
// node can be opened as a device anywhere it can write (seen paths, /tmp: nodev), so a node made
// with a disk's numbers is no way out. mount(2) stays refused.
TEST_F(FuseSandbox, CannotMountOrOpenTheDevicesItMakes) {
  std::string seen = make_file("seen/f");
  auto got = probe({"--no-auto-see", "--see", dir_ + "/seen"}, {},
                   {"@mount=" + dir_ + "/seen", "@mknod=" + dir_ + "/seen/dev", "@mknod=/tmp/dev"});
  EXPECT_EQ(got, (std::vector<long>{1000 * EPERM + EPERM, EACCES, EACCES}));
  EXPECT_FALSE(fs::exists(dir_ + "/seen/dev"));
}

// Root in a mount namespace still reaches the host through the kernel's global state. Each of
// these was open to the sandboxed file system before (each "0": it worked; found 2026-12-01):
// /proc/sys read-write (core_pattern names a program the host's kernel runs as root on the next
// crash: a way out), BPF maps and programs, system-wide perf, the kernel log, filesystem-wide
// fanotify marks, root's keyrings, the host's hostname and SysV IPC, and the capabilities listed.
// Now: /proc is read-only, those calls are refused (EPERM), hostname and IPC are the FS's own
// namespaces', and those capabilities are in no set.
TEST_F(FuseSandbox, CannotReachTheHostsKernelState) {
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  const int key = 0x77a7d000 + ::getpid() % 4096;
  const int shm = ::shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
  ASSERT_GE(shm, 0) << std::strerror(errno);
  ::setenv("WARD_PROBE_SHM", std::to_string(key).c_str(), 1);
  const int caps[] = {CAP_SYS_BOOT, CAP_SYS_TIME, CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_PTRACE, CAP_SYSLOG,
                      CAP_SYS_NICE, CAP_SYS_PACCT, CAP_SYS_TTY_CONFIG, CAP_AUDIT_CONTROL, CAP_BPF, CAP_PERFMON};
  std::vector<std::string> paths = {"/proc/sys/kernel/core_pattern", "@call=bpf", "@call=perf", "@call=syslog",
                                    "@call=fanotify", "@call=keyctl", "@call=hostname", "@call=shm"};
  for (int c : caps) paths.push_back("@cap=" + std::to_string(c));
  auto got = probe({"--no-auto-see"}, {}, paths);
  ::unsetenv("WARD_PROBE_SHM");
  ::shmctl(shm, IPC_RMID, nullptr);
  char now[256] = {};
  ASSERT_EQ(::gethostname(now, sizeof now - 1), 0);
  if (std::string(now) != host) {
    ADD_FAILURE() << "the file system renamed the host (" << now << "); named back";
    (void)!::sethostname(host, std::strlen(host));
  }
  constexpr long kRefused = 1001 * EPERM;
  std::vector<long> want = {kReadOnly, kRefused, kRefused, kRefused, kRefused, kRefused,
                            0,  // sethostname works, in its own UTS namespace (checked above)
                            1001 * ENOENT};  // the host's segment is not in its IPC namespace
  want.resize(paths.size(), 0);  // no capability of the list held
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_EQ(got[i], want[i]) << paths[i];
}

// --user: the file system has the user's rights and nothing more: a file only root may open is
// EACCES, the user's own opens; no capability (CAP_SYS_ADMIN, CAP_DAC_OVERRIDE), no way back to
// uid 0, no device node made (mknod EPERM, where root makes one it cannot open). The mount is the
// user's, so the test (root) reads the probe through --allow-other. The control: the same as root.
TEST_F(FuseSandbox, AsAUserItHasThatUsersRightsOnly) {
  constexpr uid_t kNobody = 65534;
  const std::string root_only = make_file("seen/root-only"), own = make_file("seen/own");
  ASSERT_EQ(::chmod(root_only.c_str(), 0600), 0);
  ASSERT_EQ(::chmod(own.c_str(), 0600), 0);
  ASSERT_EQ(::chown(own.c_str(), kNobody, kNobody), 0);
  ASSERT_EQ(::chown((dir_ + "/seen").c_str(), kNobody, kNobody), 0);
  const std::vector<std::string> paths = {root_only, own, "@cap=" + std::to_string(CAP_SYS_ADMIN),
                                          "@cap=" + std::to_string(CAP_DAC_OVERRIDE), "@call=setuid0",
                                          "@mknod=" + dir_ + "/seen/dev"};
  const std::vector<std::string> opts = {"--no-auto-see", "--see", dir_ + "/seen", "--allow-other"};
  std::vector<std::string> as_user = opts;
  as_user.insert(as_user.end(), {"--user", "nobody"});
  EXPECT_EQ(probe(as_user, {}, paths),
            (std::vector<long>{1000 * EACCES + EACCES, kSeen, 0, 0, 1001 * EPERM, 1000 * EPERM + EPERM}));
  EXPECT_EQ(probe(opts, {}, paths), (std::vector<long>{kSeen, kSeen, 1001, 1001, 0, EACCES}));
}

// Every file system, sandboxed or not: no pushing characters into a terminal's input (TIOCSTI).
// Its stderr is often the user's terminal, and what it pushes there the user's shell runs.
TEST_F(FuseSandbox, NoFileSystemCanTypeIntoATerminal) {
  auto got = probe({"--no-sandbox"}, {}, {"@call=tiocsti"});
  EXPECT_EQ(got, (std::vector<long>{1001 * EPERM}));
}

// A fork bomb in the file system stops at --max-tasks (a pids cgroup), not at the host's last PID.
// The probe forks 64 children: with a bound of 16 the fork fails (EAGAIN); with no bound all 64
// are made. Skipped where this machine has no writable pids cgroup hierarchy (ward logs that).
TEST_F(FuseSandbox, AForkBombStopsAtTheTaskBound) {
  std::string log = dir_ + "/log";
  auto bounded = probe({"--max-tasks", "16", "--log", log}, {}, {"@call=forks"});
  if (slurp(log).find("with the pids controller") != std::string::npos) GTEST_SKIP() << slurp(log);
  EXPECT_EQ(bounded, (std::vector<long>{1001 * EAGAIN}));
  EXPECT_EQ(probe({"--max-tasks", "0"}, {}, {"@call=forks"}), (std::vector<long>{0}));
}

// A file system that allocates without end is stopped at --max-memory (a memory cgroup): the
// probe's child touches 1 GiB; with a bound of 384 MiB the OOM killer ends it inside the file
// system's cgroup (ENOMEM) and the file system itself goes on answering; with no bound it gets
// all of it. The bound leaves the file system room of its own: under AddressSanitizer a bound of
// 64 MiB killed the file system itself at every start. Skipped where this machine has no writable
// memory cgroup hierarchy (ward logs that).
TEST_F(FuseSandbox, AMemoryHogStopsAtTheMemoryBound) {
  std::string log = dir_ + "/log";
  auto bounded = probe({"--max-memory", "384M", "--log", log}, {}, {"@call=alloc"});
  if (slurp(log).find("with the memory controller") != std::string::npos) GTEST_SKIP() << slurp(log);
  EXPECT_EQ(bounded, (std::vector<long>{1001 * ENOMEM})) << slurp(log);
  EXPECT_EQ(probe({"--max-memory", "0"}, {}, {"@call=alloc"}), (std::vector<long>{0}));
}

// The control: without the sandbox the same probe sees the host (so the probe can tell).
TEST_F(FuseSandbox, NoSandboxSeesTheHost) {
  std::string ro = make_file("ro/f"), hidden = make_file("hidden/f");
  std::string me = "/proc/" + std::to_string(::getpid()) + "/status";
  auto got = probe({"--no-sandbox"}, {}, {ro, hidden, me, "@mount=" + dir_ + "/ro", "@mknod=" + dir_ + "/ro/dev"});
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[4], 0) << "mknod and open of a device node on the host's /tmp";
  EXPECT_EQ(got[3], kSeen) << "mount(2) of a tmpfs";
  EXPECT_EQ(got[0], kSeen);
  EXPECT_EQ(got[1], kSeen);
  EXPECT_EQ(got[2] / 1000, 0) << "the test's own /proc entry is readable: " << got[2];
}

// The default: the paths the command line names are seen (directories themselves, a file with
// its directory, a file yet to be made with its directory, overlay-style option lists), and
// nothing beside them. Each is its own tmpfs here, so that the merge below does not apply.
TEST_F(FuseSandbox, AutoSeesTheCommandLinesPaths) {
  for (auto d : {"data", "l1", "l2", "u", "img", "new"}) {
    std::string at = dir_ + "/" + d;
    fs::create_directories(at);
    mounts_.push_back(at);
    ASSERT_EQ(::mount("test", at.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  }
  std::string data = make_file("data/f"), l1 = make_file("l1/f"), l2 = make_file("l2/f"), up = make_file("u/f");
  std::string img = make_file("img/disk.img"), sibling = make_file("img/sibling");
  std::string hidden = make_file("hidden/f");
  auto got = probe({},
                   {dir_ + "/data", "-o", "lowerdir=" + dir_ + "/l1:" + dir_ + "/l2,upperdir=" + dir_ + "/u",
                    img, dir_ + "/new/archive.zip", "fakeroot"},
                   {data, l1, l2, up, img, sibling, dir_ + "/new", hidden, dir_ + "/hidden", "/etc/shadow"});
  EXPECT_EQ(got, (std::vector<long>{kSeen, kSeen, kSeen, kSeen, kSeen, kSeen, kDirectory, kAbsent, kAbsent, kAbsent}));
}

// Paths on one file system are seen through their common directory (a rename between two bind
// mounts is EXDEV: fuse-overlayfs renames from workdir to upperdir), so a sibling there is seen
// too; the system's directories are never that common directory.
TEST_F(FuseSandbox, AutoMergesPathsOnOneFileSystem) {
  std::string up = make_file("u/f"), work = make_file("w/f"), sibling = make_file("other/f");
  auto got = probe({}, {"-o", "upperdir=" + dir_ + "/u,workdir=" + dir_ + "/w"}, {up, work, sibling, "/etc/shadow"});
  EXPECT_EQ(got, (std::vector<long>{kSeen, kSeen, kSeen, kAbsent}));
}

// --see-ro wins over the auto rule for the same path; --no-auto-see sees none of them.
TEST_F(FuseSandbox, ExplicitOptionsOverrideTheAutoRule) {
  std::string data = make_file("data/f"), other = make_file("other/f");
  auto got = probe({"--see-ro", dir_ + "/data"}, {dir_ + "/data", dir_ + "/other"}, {data, other});
  EXPECT_EQ(got, (std::vector<long>{kReadOnly, kSeen}));
}

TEST_F(FuseSandbox, NoAutoSeeSeesNoneOfTheCommandLine) {
  std::string data = make_file("data/f");
  auto got = probe({"--no-auto-see"}, {dir_ + "/data"}, {data});
  EXPECT_EQ(got, (std::vector<long>{kAbsent}));
}

// A --see that cannot be honoured is a setup error (exit 1) in words, before anything runs.
TEST_F(FuseSandbox, BadSeeIsAClearError) {
  struct Case {
    std::string path, words;
  };
  for (const Case& c : {Case{dir_ + "/no-such-dir", "No such file or directory"},
                        Case{mnt_, "mount point"}, Case{mnt_ + "/below", "mount point"},
                        Case{"/", "--no-sandbox"}, Case{"/proc/1", "its own /proc"}}) {
    start({"--see", c.path}, {kHostile, "good", "{}"});
    Exit e = ward_exit();
    ASSERT_TRUE(e.done);
    EXPECT_TRUE(WIFEXITED(e.status) && WEXITSTATUS(e.status) == 1) << c.path << " " << e.status << stderr_;
    EXPECT_NE(stderr_.find(c.words), std::string::npos) << c.path << ": " << stderr_;
    EXPECT_EQ(mount_type(mnt_), "");
  }
}

// A self-mounting libfuse2 file system in the sandbox: bindfs --resolve-symlinks opens what a
// symlink in its source points at itself and serves it as a regular file; when it cannot (the
// target is absent) it shows the symlink as it is. So the entry's type says whether the FS could
// reach a host path outside its source: a symlink in the sandbox, the file with --no-sandbox.
void resolve_symlink_out(FuseReal& f, const std::vector<std::string>& opts, const std::string& expect) {
  fs::create_directories(f.dir_ + "/src");
  fs::create_directories(f.dir_ + "/outside");
  std::ofstream(f.dir_ + "/outside/secret") << "host file\n";
  std::ofstream(f.dir_ + "/src/own") << "source file\n";
  fs::create_symlink(f.dir_ + "/outside/secret", f.dir_ + "/src/link");
  f.start(opts, {"bindfs", "-f", "--resolve-symlinks", f.dir_ + "/src", f.mnt_});
  ASSERT_TRUE(f.mounted()) << f.stderr_;
  EXPECT_EQ(read_all(f.mnt_ + "/own"), "source file\n");
  Exit kind = in_child([&] {
    struct stat st;
    if (::lstat((f.mnt_ + "/link").c_str(), &st) != 0) return 2;
    return S_ISLNK(st.st_mode) ? 0 : S_ISREG(st.st_mode) && st.st_size == 10 ? 1 : 3;
  });
  ASSERT_TRUE(kind.done && WIFEXITED(kind.status));
  EXPECT_EQ(WEXITSTATUS(kind.status) == 0 ? "symlink" : WEXITSTATUS(kind.status) == 1 ? "file" : "other", expect);
  ASSERT_EQ(::umount2(f.mnt_.c_str(), 0), 0) << std::strerror(errno);
  Exit e = f.ward_exit();
  EXPECT_TRUE(e.done && WIFEXITED(e.status) && WEXITSTATUS(e.status) == 0) << e.status << f.stderr_;
}

TEST_F(FuseReal, SandboxedBindfsCannotFollowALinkOut) {
  if (!have("bindfs")) GTEST_SKIP() << "bindfs not installed (scripts/setup.sh)";
  resolve_symlink_out(*this, {}, "symlink");
}

TEST_F(FuseReal, UnsandboxedBindfsFollowsALinkOut) {
  if (!have("bindfs")) GTEST_SKIP() << "bindfs not installed (scripts/setup.sh)";
  resolve_symlink_out(*this, {"--no-sandbox"}, "file");
}

}  // namespace
