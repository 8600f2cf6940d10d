// Neighbours: two `ward fuse` mounts at once. Unmounting one must end its ward while the other
// still serves. Each file system runs in a mount namespace cloned from ward's, which starts with a
// copy of every mount there, the neighbour's included; where mounts are private (containers, build
// roots: no propagation of the unmount into that namespace) a copy left in place keeps the
// neighbour's kernel connection, and so its ward, alive for as long as this file system runs.
//
// Each test runs in a child process with a private mount namespace of its own ("/" made private,
// so the case holds on hosts whose mounts are shared too; under chroot(2), where "/" is no mount,
// the test's directory is made a private mount instead and everything is mounted below it, each
// bind made private too); whatever it mounts, and the build root's binds, vanish with that
// namespace even if the test dies half-way.
#include <sched.h>

#include "fuse/test_support.h"

namespace ward::fuse::testing {
namespace {

// A chroot(2) root that is a plain directory holding binds of the host's directories, as a build
// root is (fresh-check, CI containers): there the file system's namespace cannot make "/" a slave.
// Only built inside the test's private namespace (see above), so nothing outlives the test.
bool make_build_root(const std::string& root, std::string& why) {
  auto bind = [&](const std::string& dir, unsigned long rec) {
    std::error_code ec;
    fs::create_directories(root + dir, ec);
    // Private: a mount below it (a ward's) must not propagate to the bound directory's peers.
    if (::mount(dir.c_str(), (root + dir).c_str(), nullptr, MS_BIND | rec, nullptr) == 0 &&
        ::mount(nullptr, (root + dir).c_str(), nullptr, MS_PRIVATE | rec, nullptr) == 0)
      return true;
    why = "bind " + dir + ": " + std::strerror(errno);
    return false;
  };
  for (const char* d : {"/usr", "/etc", "/dev", "/proc", "/sys"})
    if (!bind(d, MS_REC)) return false;
  // /tmp holds the tests' directories; the build directory holds ward.
  if (!bind("/tmp", 0) || !bind(WARD_BINARY_DIR, 0)) return false;
  for (const char* d : {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}) {
    struct stat st;
    if (::lstat(d, &st) != 0) continue;
    if (S_ISLNK(st.st_mode)) {
      std::error_code ec;
      fs::create_symlink(fs::read_symlink(d), root + d, ec);
      if (ec) return why = std::string("symlink ") + d + ": " + ec.message(), false;
    } else if (!bind(d, MS_REC)) {
      return false;
    }
  }
  return true;
}

// Starts `ward fuse --foreground args...` (under chroot(2) at `root` unless it is empty), its
// stderr in `log`. It gets SIGTERM if the test's child dies first.
pid_t spawn_ward(const std::string& root, std::vector<std::string> args, const std::string& log) {
  args.insert(args.begin(), {kWard, "fuse", "--foreground"});
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  int fd = ::open(log.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || ::dup2(fd, 2) < 0) ::_exit(126);
  if (!root.empty() && (::chroot(root.c_str()) != 0 || ::chdir("/") != 0)) ::_exit(125);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

bool wait_mounted(const std::string& path, pid_t ward) {
  auto end = Clock::now() + 20s;
  while (Clock::now() < end) {
    if (mount_type(path) == "fuse.ward") return true;
    if (::waitpid(ward, nullptr, WNOHANG) == ward) return false;
    ::usleep(5'000);
  }
  return false;
}

// What the child found, in the parent's words.
enum Outcome : int {
  kOk = 0,
  kNoNamespace,
  kNoRoot,
  kFirstNotMounted,
  kSecondNotMounted,
  kSecondNotServing,
  kUnmountFailed,
  kFirstKeptAlive,  // the bug: the neighbour's namespace kept the first mount's connection
  kSecondDidNotEnd,
  kOutcomes
};
constexpr const char* kOutcomeWords[kOutcomes] = {
    "",
    "cannot make a private mount namespace for the test",
    "cannot build the chroot root",
    "the first mount did not come up",
    "the second mount did not come up",
    "the second mount did not serve its file",
    "umount of the first mount failed",
    "the first ward did not end within 20 s of its unmount while the second one ran",
    "the second ward did not end within 20 s of its unmount",
};

class Neighbours : public FuseReal {
 protected:
  void TearDown() override {
    // Under chroot on a host with shared mounts the test directory's bind over itself (above)
    // propagates here: lift it before the directory is removed.
    while (!dir_.empty() && ::umount2(dir_.c_str(), MNT_DETACH) == 0) {}
    FuseReal::TearDown();
  }
  // Mounts A (sandboxed: the default) then B (with `b_opts`), both bindfs (libfuse2, mounting
  // itself), optionally in a build root; unmounts A and expects its ward to end while B serves.
  void run(bool in_build_root, const std::vector<std::string>& b_opts) {
    if (!have("bindfs")) GTEST_SKIP() << "bindfs not installed (scripts/setup.sh)";
    for (const char* s : {"/a/src", "/a/mnt", "/b/src", "/b/mnt", "/root"}) fs::create_directories(dir_ + s);
    std::ofstream(dir_ + "/b/src/f") << "b\n";
    const std::string root = in_build_root ? dir_ + "/root" : "";
    Exit e = in_child(
        [&] {
          if (::unshare(CLONE_NEWNS) != 0) return int{kNoNamespace};
          if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 &&
              (errno != EINVAL || ::mount(dir_.c_str(), dir_.c_str(), nullptr, MS_BIND, nullptr) != 0 ||
               ::mount(nullptr, dir_.c_str(), nullptr, MS_PRIVATE, nullptr) != 0))
            return int{kNoNamespace};
          std::string why;
          if (in_build_root && !make_build_root(root, why)) {
            std::ofstream(dir_ + "/why") << why;
            return int{kNoRoot};
          }
          const std::string a = dir_ + "/a", b = dir_ + "/b";
          ::setenv("WARD_FUSE_STATUS_DIR", (dir_ + "/status").c_str(), 1);  // not /run/ward
          pid_t wa = spawn_ward(root, {a + "/mnt", "--", "bindfs", "-f", a + "/src", a + "/mnt"}, dir_ + "/a.log");
          if (!wait_mounted(root + a + "/mnt", wa)) return int{kFirstNotMounted};
          std::vector<std::string> args = b_opts;
          for (std::string s : {b + "/mnt", std::string("--"), std::string("bindfs"), std::string("-f"), b + "/src", b + "/mnt"})
            args.push_back(s);
          pid_t wb = spawn_ward(root, args, dir_ + "/b.log");
          if (!wait_mounted(root + b + "/mnt", wb)) return int{kSecondNotMounted};
          if (read_all(root + b + "/mnt/f") != "b\n") return int{kSecondNotServing};
          if (::umount2((root + a + "/mnt").c_str(), 0) != 0) return int{kUnmountFailed};
          Exit ea = wait_for(wa, 20s);
          if (!ea.done) return int{kFirstKeptAlive};
          if (::umount2((root + b + "/mnt").c_str(), 0) != 0 || !wait_for(wb, 20s).done) return int{kSecondDidNotEnd};
          return int{kOk};
        },
        90s);
    ASSERT_TRUE(e.done) << "the test's child did not finish within 90 s";
    ASSERT_TRUE(WIFEXITED(e.status)) << e.status;
    int code = WEXITSTATUS(e.status);
    ASSERT_LT(code, kOutcomes) << code;
    EXPECT_EQ(code, kOk) << kOutcomeWords[code] << "\n" << (code == kNoRoot ? read_all(dir_ + "/why") : "")
                         << "first ward:\n"
                         << read_all(dir_ + "/a.log") << "second ward:\n" << read_all(dir_ + "/b.log");
  }
};

// The case fresh-check met: both sandboxed, under chroot(2).
TEST_F(Neighbours, SandboxedInBuildRoot) { run(true, {}); }
// Without the sandbox the self-mounting FS keeps the host's tree: other FUSE mounts are detached.
TEST_F(Neighbours, UnsandboxedSelfMount) { run(false, {"--no-sandbox"}); }
TEST_F(Neighbours, UnsandboxedSelfMountInBuildRoot) { run(true, {"--no-sandbox"}); }

}  // namespace
}  // namespace ward::fuse::testing
