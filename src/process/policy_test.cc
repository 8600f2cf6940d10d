// Policies: validation, and the compiled filter really allows and denies what it says — checked
// by running the filter in a forked child (a real seccomp filter, a real SIGSYS).
#include "ward/core/policy.h"

#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>

#include "process/seccomp.h"

namespace {

using namespace std::chrono_literals;

TEST(Policy, DefaultsAreStrict) {
  ward::Policy p;
  EXPECT_FALSE(p.allows_file_open());
  EXPECT_FALSE(p.allows_sockets());
  EXPECT_FALSE(p.allows_process_creation());
  EXPECT_FALSE(p.allows_threads());
  EXPECT_FALSE(p.allows_executable_memory());
  EXPECT_GT(p.timeout().count(), 0);
}

TEST(Policy, BuilderRejectsBadSettings) {
  EXPECT_FALSE(ward::Policy::builder().timeout(0ms).build());
  EXPECT_FALSE(ward::Policy::builder().arena_size(1024).build());
  EXPECT_FALSE(ward::Policy::builder().arena_size(64 << 20).memory(64 << 20).build());
  auto bad = ward::Policy::builder().unsafe_allow_syscall("not_a_syscall").build();
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ward::Errc::misuse);
  EXPECT_NE(bad.error().detail.find("not_a_syscall"), std::string::npos);
}

TEST(Policy, LooseningOptionsAreLoudInDescriptions) {
  auto p = ward::Policy::builder().unsafe_allow_file_open().unsafe_allow_syscall("ptrace").build();
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->allows_file_open());
  const std::string d = p->describe();
  EXPECT_NE(d.find("UNSAFE file open"), std::string::npos);
  EXPECT_NE(d.find("UNSAFE syscall ptrace"), std::string::npos);
}

// Runs `body` in a forked child under the filter compiled from `pol`; returns the wait status.
template <class Body>
int run_filtered(const ward::Policy& pol, Body body) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    char go;
    (void)!read(fds[0], &go, 1);
    auto prog = ward::detail::compile_filter(pol, getpid());
    if (!prog) _exit(90);
    sock_fprog fp{static_cast<unsigned short>(prog->size()), prog->data()};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) != 0) _exit(91);
    body();
    _exit(0);
  }
  (void)!write(fds[1], "g", 1);
  close(fds[0]);
  close(fds[1]);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

TEST(Filter, DefaultDeniesOpenWithSigsys) {
  const int st = run_filtered(ward::Policy(), [] { (void)!syscall(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY); });
  ASSERT_TRUE(WIFSIGNALED(st)) << st;
  EXPECT_EQ(WTERMSIG(st), SIGSYS);
}

TEST(Filter, DefaultAllowsComputeAndStderr) {
  const int st = run_filtered(ward::Policy(), [] {
    void* p = malloc(1 << 20);
    (void)!write(2, "", 0);
    free(p);
  });
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

TEST(Filter, DefaultDeniesWritesToOtherDescriptors) {
  const int st = run_filtered(ward::Policy(), [] { (void)!write(7, "x", 1); });
  ASSERT_TRUE(WIFSIGNALED(st)) << st;
  EXPECT_EQ(WTERMSIG(st), SIGSYS);
}

TEST(Filter, SignalsOnlyToItself) {
  const int st = run_filtered(ward::Policy(), [] { (void)!kill(1, SIGTERM); });
  ASSERT_TRUE(WIFSIGNALED(st)) << st;
  EXPECT_EQ(WTERMSIG(st), SIGSYS);
}

TEST(Filter, FileOpenAllowedWhenAskedLoudly) {
  auto pol = ward::Policy::builder().unsafe_allow_file_open().build();
  ASSERT_TRUE(pol);
  const int st = run_filtered(*pol, [] {
    const int fd = open("/etc/hostname", O_RDONLY);
    _exit(fd >= 0 ? 0 : 3);
  });
  ASSERT_TRUE(WIFEXITED(st)) << st;
  EXPECT_EQ(WEXITSTATUS(st), 0);
}

// refuse_files: every path-based call answers EACCES and the extension lives on; a call that
// is not about paths is still a violation.
TEST(Filter, RefusedFilesFailWithEaccesAndNothingElseLoosens) {
  auto pol = ward::Policy::builder().refuse_files().build();
  ASSERT_TRUE(pol);
  EXPECT_FALSE(pol->allows_file_open());
  EXPECT_NE(pol->describe().find("refused (EACCES)"), std::string::npos);
  const int st = run_filtered(*pol, [] {
    struct stat sb {};
    char buf[64];
    int bad = 0;
    errno = 0;
    if (open("/dev/urandom", O_RDONLY) != -1 || errno != EACCES) bad |= 1;
    errno = 0;
    if (syscall(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY) != -1 || errno != EACCES) bad |= 2;
    errno = 0;
    if (stat("/etc/hostname", &sb) != -1 || errno != EACCES) bad |= 4;
    errno = 0;
    if (access("/etc/passwd", R_OK) != -1 || errno != EACCES) bad |= 8;
    errno = 0;
    if (readlink("/proc/self/exe", buf, sizeof buf) != -1 || errno != EACCES) bad |= 16;
    errno = 0;
    if (mkdir("/tmp/ward-refused", 0700) != -1 || errno != EACCES) bad |= 32;
    _exit(bad);
  });
  ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  EXPECT_EQ(WEXITSTATUS(st), 0) << "bit mask of the calls that did not fail with EACCES";
  const int other = run_filtered(*pol, [] { (void)!write(7, "x", 1); });
  ASSERT_TRUE(WIFSIGNALED(other)) << other;
  EXPECT_EQ(WTERMSIG(other), SIGSYS);
}

TEST(Policy, RefuseFilesContradictsAllowingThem) {
  auto p = ward::Policy::builder().refuse_files().unsafe_allow_file_open().build();
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind, ward::Errc::misuse);
}

TEST(Filter, SyscallNamesResolve) {
  EXPECT_EQ(ward::detail::syscall_name(SYS_openat), "openat");
  EXPECT_EQ(ward::detail::syscall_name(99999).rfind("syscall", 0), 0u);
}

}  // namespace
