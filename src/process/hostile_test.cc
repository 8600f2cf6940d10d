// The security review's findings on process domains, each reproduced by a hostile plugin
// (examples/plugins/hostile/dom_*.c) and checked here. Each test failed on the code the review
// ran against; see docs/security.md for the findings and what each one was.
//
// Timing bounds here are generous on purpose (a shared, noisy 2-core machine): they state the
// documented guarantee ("a 300 ms budget ends the call within seconds, not never"), not a speed.
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <fcntl.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "hostile_arena.h"
#include "interfaces.h"
#include "ward/process/channel.h"

// The hostile plugins hard-code where things are in the arena: keep them honest.
static_assert(offsetof(ward::wire::Control, to_child) == HOSTILE_TO_CHILD);
static_assert(offsetof(ward::wire::Control, to_host) == HOSTILE_TO_HOST);
static_assert(offsetof(ward::wire::Doorbell, cpu) == HOSTILE_DOORBELL_CPU);
static_assert(offsetof(ward::wire::Control, fault) == HOSTILE_FAULT);
static_assert(offsetof(ward::wire::Fault, syscall_nr) == HOSTILE_FAULT_SYSCALL);
static_assert(offsetof(ward::wire::Fault, ungranted_table) == HOSTILE_FAULT_TABLE);
static_assert(offsetof(ward::wire::Fault, ungranted_fn) == HOSTILE_FAULT_FN);
static_assert(ward::wire::kMagic == HOSTILE_ARENA_MAGIC);

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string hostile(const char* name) { return std::string(WARD_PLUGIN_DIR) + "/hostile/lib" + name + ".so"; }
std::string plugin(const char* name) { return std::string(WARD_PLUGIN_DIR) + "/lib" + name + ".so"; }

ward::Policy policy(std::chrono::nanoseconds timeout, unsigned nesting = 32) {
  auto p = ward::Policy::builder().timeout(timeout).max_nesting(nesting).build();
  EXPECT_TRUE(p);
  return *p;
}

ward::Instance<probe_api> load(const std::string& path, const ward::Policy& pol) {
  auto p = ward::Instance<probe_api>::load(path, "probe_entry", pol);
  EXPECT_TRUE(p) << (p ? "" : p.error().message());
  if (!p) std::abort();  // nothing below can run without it
  return std::move(*p);
}

// If the code under test hangs for ever, end the test process with a message instead of hanging
// the suite (a hang here is exactly the bug being tested for).
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds limit, const char* what)
      : t_([this, limit, what] {
          std::unique_lock<std::mutex> g(mu_);
          if (!cv_.wait_for(g, limit, [&] { return done_; })) {
            std::fprintf(stderr, "watchdog: %s did not finish within %lld s\n", what,
                         static_cast<long long>(limit.count()));
            std::_Exit(3);
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> g(mu_);
      done_ = true;
    }
    cv_.notify_all();
    t_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread t_;
};

constexpr probe_host kQuietHost{[](const char*) {}};

// ---- 1. Spurious wake-ups must not extend a wait ------------------------------------------------
TEST(Hostile, FutexWakeSpamCannotStopTheCallTimeout) {
  Watchdog dog(60s, "a call whose plugin spams futex wake-ups");
  auto p = load(hostile("dom_futex_spam"), policy(300ms));
  unsigned char buf[16] = {};
  const auto t0 = Clock::now();
  auto r = p.call<&probe_api::poke>(buf, sizeof buf);
  const auto took = Clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::hung) << r.error().message();
  EXPECT_LT(took, 5s);  // the review saw a 1 s timeout not fire in 50 s
}

// ---- 2. Spinning is charged: a storm of cheap upcalls ends at the budget --------------------------
void expect_storm_bounded(std::size_t variant, bool pin) {
  Watchdog dog(60s, "a call whose plugin storms a host service");
  auto p = load(hostile("dom_upcall_storm"), policy(500ms));
  ASSERT_TRUE(p.call<&probe_api::init>(&kQuietHost));
  // Pinned: host thread and child on two different CPUs: every upcall then arrives inside the host's
  // spin window, the case the old accounting charged nothing for (with idle cores to spare, the
  // review's call ran 10x over; on a loaded 2-core machine less).
  cpu_set_t before, allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
  allowed = before;
  int cpus[2] = {-1, -1};
  for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; ++c)
    if (CPU_ISSET(c, &allowed)) cpus[k++] = c;
  struct RestoreAffinity {
    cpu_set_t set;
    ~RestoreAffinity() { sched_setaffinity(0, sizeof set, &set); }
  } restore{before};
  if (pin && cpus[1] >= 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[0], &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    CPU_ZERO(&one);
    CPU_SET(cpus[1], &one);
    ASSERT_EQ(sched_setaffinity(ward::pid_of(p.domain()), sizeof one, &one), 0);
  }
  unsigned char buf[16] = {};
  const auto t0 = Clock::now();
  auto r = p.call<&probe_api::poke>(buf, variant);
  const auto took = Clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::hung) << r.error().message();
  // The documented bound: the 500 ms budget + the time the host spent in its own services +
  // teardown (at most about a second). Before the fix, the pinned storm ran 3 s here, and the
  // review saw 2x to 10.7x the budget elsewhere, with no bound at all in principle.
  const auto services = p.domain().host_service_time();
  EXPECT_LT(took, 500ms + services + 1500ms)
      << "took " << std::chrono::duration<double, std::milli>(took).count() << " ms, of which "
      << std::chrono::duration<double, std::milli>(services).count() << " ms in host services";
}

TEST(Hostile, UpcallStormEndsNearTheBudget) { expect_storm_bounded(1, true); }
// Unpinned, the scheduler may put both on one CPU, where the host would normally not spin; the
// fake CPU number defeats that. (On this 2-core machine the old code stayed under the bound in
// this variant; the pinned one above is the variant that showed the bug here.)
TEST(Hostile, UpcallStormWithAFakeCpuNumberEndsNearTheBudget) { expect_storm_bounded(2, false); }

// ---- 3. SIGSYS stays the host's ---------------------------------------------------------------------
class SigsysTrick : public ::testing::TestWithParam<long> {};

TEST_P(SigsysTrick, IsAViolationNotASilentEnosys) {
  auto p = load(hostile("dom_sigsys_tricks"), policy(2s));
  ASSERT_TRUE(p.call<&probe_api::run>(0L));
  auto r = p.call<&probe_api::run>(GetParam());
  ASSERT_FALSE(r) << "the plugin took over SIGSYS: forbidden call returned " << r->unverified_value_i_trust_it();
  EXPECT_EQ(r.error().kind, ward::Errc::violation) << r.error().message();
  EXPECT_EQ(r.error().signal, SIGSYS);
}

// 1, 2: rt_sigaction(SIGSYS with upper bits set); 3: SIG_IGN that way; 4: SIGSYS blocked;
// 5: the plain attempt.
INSTANTIATE_TEST_SUITE_P(Hostile, SigsysTrick, ::testing::Values(1L, 2L, 3L, 4L, 5L));

TEST(Hostile, InstallingASigsysHandlerIsReportedAsRtSigaction) {
  auto p = load(hostile("dom_sigsys_tricks"), policy(2s));
  auto r = p.call<&probe_api::run>(1L);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("rt_sigaction"), std::string::npos) << r.error().detail;
}

// ---- 4. No path lookups through fstat's back door -----------------------------------------------------
TEST(Hostile, StatWithEmptyPathFlagLearnsNothingAboutPaths) {
  auto p = load(hostile("dom_stat_probe"), policy(2s));
  auto existing = p.call<&probe_api::run>(1L);
  auto missing = p.call<&probe_api::run>(2L);
  ASSERT_TRUE(existing) << existing.error().message();
  ASSERT_TRUE(missing) << missing.error().message();
  // The same answer whether the file exists or not, and no size.
  EXPECT_LT(existing->unverified_value_i_trust_it(), 0);
  EXPECT_EQ(existing->unverified_value_i_trust_it(), missing->unverified_value_i_trust_it());
  // glibc's fstat() (the reason the call is there at all) fails harmlessly...
  auto fs = p.call<&probe_api::run>(3L);
  ASSERT_TRUE(fs) << fs.error().message();
  // ...and a path lookup without the flag stays a violation.
  auto plain = p.call<&probe_api::run>(4L);
  ASSERT_FALSE(plain);
  EXPECT_EQ(plain.error().kind, ward::Errc::violation) << plain.error().message();
}

// ---- 7. The fault record qualifies, never decides ------------------------------------------------------
class FakeFault : public ::testing::TestWithParam<std::pair<std::size_t, int>> {};

TEST_P(FakeFault, AnExitStaysAnExit) {
  auto p = load(hostile("dom_fake_fault"), policy(2s));
  unsigned char buf[16] = {};
  auto r = p.call<&probe_api::poke>(buf, GetParam().first);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::exited) << r.error().message();
  EXPECT_EQ(r.error().exit_status, GetParam().second);
  EXPECT_EQ(r.error().detail.find("execve"), std::string::npos) << r.error().detail;
}

INSTANTIATE_TEST_SUITE_P(Hostile, FakeFault,
                         ::testing::Values(std::make_pair(std::size_t{1}, 0), std::make_pair(std::size_t{2}, 121),
                                           std::make_pair(std::size_t{3}, 0)));

TEST(Hostile, SendingItselfSigsysIsItselfTheViolation) {
  auto p = load(hostile("dom_fake_fault"), policy(2s));
  unsigned char buf[16] = {};
  auto r = p.call<&probe_api::poke>(buf, std::size_t{4});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::violation) << r.error().message();
  // The record was written first, so it names execve; the point is that the plugin could not
  // die by SIGSYS without a filter trap: sending SIGSYS is what trapped.
  EXPECT_EQ(r.error().signal, SIGSYS);
}

// ---- 11. Nesting is bounded --------------------------------------------------------------------------
ward::Instance<probe_api>* g_recurse = nullptr;
int g_depth = 0, g_deepest = 0;
ward::Result<long> g_refused = 0L;
bool g_saw_limit = false;

// The host service calls the plugin again on the same thread; the review's host overflowed its
// stack at about 2,000 levels. Capped at 400 here so that the old code fails cleanly.
constexpr probe_host kRecursingHost{[](const char*) {
  if (g_depth >= 400 || g_saw_limit) return;
  ++g_depth;
  g_deepest = std::max(g_deepest, g_depth);
  auto r = g_recurse->call<&probe_api::run>(1L);
  if (!r) {
    g_saw_limit = true;
    g_refused = std::unexpected(r.error());
  }
  --g_depth;
}};

TEST(Hostile, NestingIsLimitedWithAClearError) {
  auto p = load(hostile("dom_recurse"), policy(5s, 16));
  g_recurse = &p;
  g_depth = g_deepest = 0;
  g_saw_limit = false;
  ASSERT_TRUE(p.call<&probe_api::init>(&kRecursingHost));
  auto r = p.call<&probe_api::run>(1L);
  g_recurse = nullptr;
  ASSERT_TRUE(r) << r.error().message();  // the outermost call still completes
  ASSERT_TRUE(g_saw_limit) << "nested " << g_deepest << " deep without a limit";
  EXPECT_EQ(g_refused.error().kind, ward::Errc::limit);
  EXPECT_NE(g_refused.error().detail.find("max_nesting"), std::string::npos) << g_refused.error().detail;
  EXPECT_EQ(g_deepest, 16);  // levels 2..16 nested; the 17th call was refused
  EXPECT_TRUE(p.domain().alive());
  EXPECT_TRUE(p.call<&probe_api::run>(0L));
}

// ---- 12. A host service waiting for another thread's call to the same domain ----------------------
ward::Result<ward::Tainted<long>> g_other = ward::Tainted<long>(0L);
std::chrono::nanoseconds g_other_took{};

constexpr probe_host kDeadlockingHost{[](const char*) {
  std::thread t([] {
    const auto t0 = Clock::now();
    g_other = g_recurse->call<&probe_api::run>(0L);
    g_other_took = Clock::now() - t0;
  });
  t.join();  // waits for a thread that waits for the domain this service's caller holds
}};

TEST(Hostile, AHostServiceWaitingOnACallToItsOwnDomainIsReportedNotHung) {
  Watchdog dog(60s, "a host service waiting for a call into its own domain");
  auto p = load(hostile("dom_recurse"), policy(300ms));
  g_recurse = &p;
  ASSERT_TRUE(p.call<&probe_api::init>(&kDeadlockingHost));
  auto r = p.call<&probe_api::run>(1L);
  g_recurse = nullptr;
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_FALSE(g_other);
  EXPECT_EQ(g_other.error().kind, ward::Errc::misuse) << g_other.error().message();
  EXPECT_NE(g_other.error().detail.find("probe_host::log"), std::string::npos) << g_other.error().detail;
  EXPECT_GE(g_other_took, 300ms);  // it did wait for the policy's timeout first
  EXPECT_LT(g_other_took, 5s);
  EXPECT_TRUE(p.domain().alive());
}

// Waiting behind another thread's ordinary call is not a deadlock and must not be reported.
TEST(Hostile, WaitingBehindAnotherThreadsCallIsFine) {
  auto p = load(plugin("hang_loop"), policy(400ms));
  std::atomic<bool> started{false};
  std::thread t([&] {
    started = true;
    (void)p.call<&probe_api::run>(0L);
  });
  while (!started) std::this_thread::yield();
  auto r = p.call<&probe_api::run>(0L);
  t.join();
  EXPECT_TRUE(r) << r.error().message();
}

// ---- 13. Tracers ---------------------------------------------------------------------------------------
bool have_cap_sys_ptrace() {
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2]{};
  if (syscall(SYS_capget, &h, d) != 0) return false;
  return (d[CAP_SYS_PTRACE / 32].effective & (1u << (CAP_SYS_PTRACE % 32))) != 0;
}

// As root, the test runs both the host and the would-be tracer as root *without any
// capability*: a root host's child normally has every capability, and the kernel refuses any
// tracer whose capabilities are not a superset whatever ward does, so only a same-user,
// unprivileged pair shows ward's part. (Staying uid 0 keeps the files reachable wherever the
// checkout lies.) Not root: the current user is already that.
void become_unprivileged() {
  if (getuid() != 0) return;
  // No capabilities regained on exec as root, none in the bounding set, none now.
  if (prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                   SECBIT_NO_SETUID_FIXUP_LOCKED, 0, 0, 0) != 0)
    _exit(120);
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) (void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2]{};
  if (syscall(SYS_capset, &h, d) != 0) _exit(121);
}

// Starts ward-test-host, unprivileged, with `plugin` loaded; returns its pid, the domain child's pid
// and the pipe that keeps it alive (closing it ends the host). The executables and the plugin
// are copied into a fresh directory everyone may read, because the build tree may lie under a
// directory the unprivileged host cannot enter (another user's 0700 checkout, say); removed again
// afterwards.
struct OtherHost {
  pid_t host = -1, child = -1;
  int keep_alive = -1;
  std::filesystem::path dir;
  ~OtherHost() {
    if (keep_alive >= 0) close(keep_alive);
    if (host > 0) {
      int st;
      waitpid(host, &st, 0);
    }
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

void start_other_host(OtherHost& h, const std::string& plugin_path) {
  char tmpl[] = "/tmp/ward-other-host-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  h.dir = tmpl;
  ASSERT_EQ(chmod(tmpl, 0755), 0);
  namespace fs = std::filesystem;
  const fs::path bin = WARD_BINARY_DIR;
  for (const fs::path& f : {bin / "ward-test-host", bin / "ward-helper", bin / "libward-audit.so", fs::path(plugin_path)}) {
    std::error_code ec;
    fs::copy_file(f, h.dir / f.filename(), ec);
    ASSERT_FALSE(ec) << "copying " << f << ": " << ec.message();
    ASSERT_EQ(chmod((h.dir / f.filename()).c_str(), 0755), 0);
  }
  const std::string exe = (h.dir / "ward-test-host").string();
  const std::string copied_plugin = (h.dir / fs::path(plugin_path).filename()).string();
  const std::string helper_env = "WARD_HELPER_DIR=" + h.dir.string();
  int in[2], out[2];
  ASSERT_EQ(pipe2(in, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  h.host = fork();
  if (h.host == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    become_unprivileged();
    char* envp[] = {const_cast<char*>(helper_env.c_str()), nullptr};
    execle(exe.c_str(), exe.c_str(), copied_plugin.c_str(), static_cast<char*>(nullptr), envp);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  h.keep_alive = in[1];
  char line[32] = {};
  std::size_t n = 0;
  while (n + 1 < sizeof line && read(out[0], line + n, 1) == 1 && line[n] != '\n') ++n;
  close(out[0]);
  h.child = static_cast<pid_t>(std::strtol(line, nullptr, 10));
  if (h.child <= 0) {
    int st = 0;
    waitpid(h.host, &st, 0);
    h.host = -1;
    FAIL() << "ward-test-host did not report a domain (wait status " << st << ")";
  }
}

// Forks an unprivileged process that tries to attach to `pid`; returns the errno of
// PTRACE_SEIZE (0: it attached, and detached again).
int try_attach_unprivileged(pid_t pid) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t t = fork();
  if (t == 0) {
    become_unprivileged();
    int err = 0;
    if (ptrace(PTRACE_SEIZE, pid, nullptr, nullptr) != 0) err = errno;
    else ptrace(PTRACE_DETACH, pid, nullptr, nullptr);
    (void)!write(fds[1], &err, sizeof err);
    _exit(0);
  }
  close(fds[1]);
  int err = -1;
  (void)!read(fds[0], &err, sizeof err);
  close(fds[0]);
  int st;
  waitpid(t, &st, 0);
  return err;
}

TEST(Hostile, ATracerOfTheSameUserCannotAttach) {
  OtherHost h;
  ASSERT_NO_FATAL_FAILURE(start_other_host(h, plugin("hang_loop")));
  EXPECT_EQ(try_attach_unprivileged(h.child), EPERM) << "a same-user process attached to the domain's child";
}

// A privileged tracer (root can always attach) stops the child and never lets go of its exit
// status: the call still fails on time, teardown stays bounded, and other domains keep working
// (the reaper, which serves all of them, must not wait for this one).
TEST(Hostile, APrivilegedTracerCannotStretchAHang) {
  if (!have_cap_sys_ptrace()) GTEST_SKIP() << "needs CAP_SYS_PTRACE to play the privileged tracer";
  Watchdog dog(90s, "a domain whose child a tracer holds");
  auto p = std::make_unique<ward::Instance<probe_api>>(load(plugin("hang_loop"), policy(300ms)));
  const pid_t child = ward::pid_of(p->domain());
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t tracer = fork();
  if (tracer == 0) {
    char ok = ptrace(PTRACE_SEIZE, child, nullptr, nullptr) == 0 && ptrace(PTRACE_INTERRUPT, child, nullptr, nullptr) == 0;
    (void)!write(ready[1], &ok, 1);
    for (;;) pause();  // holds the tracee, never waits for it
  }
  close(ready[1]);
  char ok = 0;
  ASSERT_EQ(read(ready[0], &ok, 1), 1);
  close(ready[0]);
  struct KillTracer {
    pid_t pid;
    ~KillTracer() {
      kill(pid, SIGKILL);
      int st;
      waitpid(pid, &st, 0);
    }
  } cleanup{tracer};
  ASSERT_TRUE(ok) << "the privileged tracer could not attach";

  const auto t0 = Clock::now();
  auto r = p->call<&probe_api::run>(0L);
  const auto took = Clock::now() - t0;
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::hung) << r.error().message();
  EXPECT_LT(took, 4s);  // the review saw ~20 s for a 1 s budget

  // Another domain loads and answers while the tracer still holds the first child's exit.
  auto other = ward::Instance<probe_api>::load(plugin("probe_ok"), "probe_entry", policy(2s));
  ASSERT_TRUE(other) << other.error().message();
  EXPECT_TRUE(other->call<&probe_api::run>(1L));

  const auto t1 = Clock::now();
  p.reset();
  EXPECT_LT(Clock::now() - t1, 4s);  // teardown is bounded too
}

}  // namespace
