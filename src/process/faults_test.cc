// Misbehaving plugins: each fault is contained in its domain, reported with the right kind,
// naming the plugin and the function, and every later call fails fast. The test process is the
// host: it surviving every test is the point.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>
#include <string>

#include "interfaces.h"

namespace {

using namespace std::chrono_literals;

std::string plugin(const char* name) { return std::string(WARD_PLUGIN_DIR) + "/lib" + name + ".so"; }

ward::Policy quick_policy(std::chrono::milliseconds timeout = 400ms) {
  auto p = ward::Policy::builder().timeout(timeout).memory(256ull << 20).build();
  EXPECT_TRUE(p);
  return *p;
}

ward::Instance<probe_api> load_probe(const char* name, std::chrono::milliseconds timeout = 400ms) {
  auto p = ward::Instance<probe_api>::load(plugin(name), "probe_entry", quick_policy(timeout));
  EXPECT_TRUE(p) << (p ? "" : p.error().message());
  return std::move(*p);
}

// The first call is harmless (arg 0), the second misbehaves (arg 1).
ward::Error run_fault(ward::Instance<probe_api>& p) {
  auto ok = p.call<&probe_api::run>(0L);
  EXPECT_TRUE(ok) << (ok ? "" : ok.error().message());
  if (ok) {
    EXPECT_EQ(ok->unverified_value_i_trust_it(), 1);
  }
  auto bad = p.call<&probe_api::run>(1L);
  EXPECT_FALSE(bad);
  return bad ? ward::Error{} : bad.error();
}

void expect_dead_afterwards(ward::Instance<probe_api>& p, ward::Errc kind) {
  EXPECT_FALSE(p.domain().alive());
  auto later = p.call<&probe_api::run>(0L);
  ASSERT_FALSE(later);
  EXPECT_EQ(later.error().kind, kind);
  EXPECT_TRUE(later.error().earlier);
  // The child has been reaped: no zombie, no process.
  EXPECT_NE(kill(ward::pid_of(p.domain()), 0), 0);
}

TEST(Faults, SegfaultIsCrashWithSignalName) {
  auto p = load_probe("crash_segv");
  auto e = run_fault(p);
  EXPECT_EQ(e.kind, ward::Errc::crashed) << e.message();
  EXPECT_EQ(e.signal, SIGSEGV);
  EXPECT_NE(e.detail.find("SIGSEGV"), std::string::npos) << e.detail;
  EXPECT_EQ(e.plugin, "libcrash_segv.so");
  EXPECT_EQ(e.function, "probe_api::run");
  EXPECT_FALSE(e.earlier);
  expect_dead_afterwards(p, ward::Errc::crashed);
}

TEST(Faults, AbortIsCrashWithSigabrt) {
  auto p = load_probe("crash_abort");
  auto e = run_fault(p);
  EXPECT_EQ(e.kind, ward::Errc::crashed) << e.message();
  EXPECT_EQ(e.signal, SIGABRT);
  expect_dead_afterwards(p, ward::Errc::crashed);
}

TEST(Faults, InfiniteLoopIsHungAndKilled) {
  auto p = load_probe("hang_loop");
  const auto t0 = std::chrono::steady_clock::now();
  auto e = run_fault(p);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(e.kind, ward::Errc::hung) << e.message();
  // The first cause stays: the SIGKILL that ended the hang does not turn it into a crash.
  auto first = p.domain().failure();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->kind, ward::Errc::hung);
  EXPECT_LT(waited, 30s);  // generous bound: only "it does not hang forever"
  expect_dead_afterwards(p, ward::Errc::hung);
}

TEST(Faults, ForbiddenOpenIsViolationNamingTheSyscall) {
  auto p = load_probe("syscall_open");
  auto e = run_fault(p);
  EXPECT_EQ(e.kind, ward::Errc::violation) << e.message();
  EXPECT_TRUE(e.detail.find("openat") != std::string::npos || e.detail.find("open") != std::string::npos) << e.detail;
  EXPECT_GE(e.syscall, 0);
  expect_dead_afterwards(p, ward::Errc::violation);
}

// A domain that may open files may open a terminal, but never push input into one (TIOCSTI): the
// user's own /dev/pts/N is a file it could open, and the user's shell would run what it typed. The
// probe pushes into a pseudo-terminal pair of its own; before the guard the push worked (run
// returned 0, found 2026-12-01).
TEST(Faults, NoDomainCanTypeIntoATerminal) {
  auto pol = ward::Policy::builder().timeout(10s).memory(256ull << 20).unsafe_allow_file_open().build();
  ASSERT_TRUE(pol);
  auto p = ward::Instance<probe_api>::load(plugin("tty_inject"), "probe_entry", *pol);
  ASSERT_TRUE(p) << p.error().message();
  auto e = run_fault(*p);
  EXPECT_EQ(e.kind, ward::Errc::violation) << e.message();
  EXPECT_NE(e.detail.find("ioctl"), std::string::npos) << e.detail;
}

TEST(Faults, ForbiddenForkIsViolation) {
  auto p = load_probe("syscall_fork");
  auto e = run_fault(p);
  EXPECT_EQ(e.kind, ward::Errc::violation) << e.message();
  EXPECT_NE(e.detail.find("clone"), std::string::npos) << e.detail;
}

TEST(Faults, ForbiddenSocketIsViolation) {
  auto p = load_probe("syscall_connect");
  auto e = run_fault(p);
  EXPECT_EQ(e.kind, ward::Errc::violation) << e.message();
  EXPECT_NE(e.detail.find("socket"), std::string::npos) << e.detail;
}

TEST(Faults, ExitIsReportedWithStatus) {
  auto p = load_probe("exit_call");
  auto e = run_fault(p);
  EXPECT_EQ(e.kind, ward::Errc::exited) << e.message();
  EXPECT_EQ(e.exit_status, 7);
  expect_dead_afterwards(p, ward::Errc::exited);
}

// The bomb touches every page up to its limit before it fails: about 200 MiB, which took ~0.6 s on
// a machine that faults memory in at ~300 MB/s (measured: a CI VM, 2026-12-01), past the 400 ms
// deadline the other faults get. The deadline is not what this test checks.
TEST(Faults, AllocationBombHitsTheMemoryLimit) {
  auto p = load_probe("alloc_bomb", 10s);
  auto e = run_fault(p);
  EXPECT_EQ(e.kind, ward::Errc::limit) << e.message();
  EXPECT_NE(e.detail.find("memory limit"), std::string::npos) << e.detail;
}

TEST(Faults, WildWriteInsideTheArenaLeavesHostMemoryAlone) {
  auto p = load_probe("wild_write");
  // Host memory around the buffer: the plugin writes 4 KiB past its end, in the arena.
  struct {
    unsigned char before[64];
    unsigned char buf[16];
    unsigned char after[8192];
  } host;
  std::memset(&host, 0x11, sizeof host);
  auto r = p.call<&probe_api::poke>(host.buf, std::size_t{1});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->unverified_value_i_trust_it(), 1);
  EXPECT_EQ(host.buf[0], 0xAB);
  for (unsigned char c : host.before) ASSERT_EQ(c, 0x11);
  for (std::size_t i = 1; i < sizeof host.buf; ++i) ASSERT_EQ(host.buf[i], 0x11);
  for (unsigned char c : host.after) ASSERT_EQ(c, 0x11);
}

TEST(Faults, WildWriteFarAwayCrashesAndLeavesOutBufferUntouched) {
  auto p = load_probe("wild_write");
  unsigned char buf[32];
  std::memset(buf, 0x22, sizeof buf);
  auto r = p.call<&probe_api::poke>(buf, sizeof buf);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::crashed) << r.error().message();
  // The plugin filled its copy with 0xAB before dying; the host's buffer never saw it.
  for (unsigned char c : buf) ASSERT_EQ(c, 0x22);
}

TEST(Faults, ConstructorCrashIsReportedAtLoad) {
  auto p = ward::Instance<probe_api>::load(plugin("ctor_crash"), "probe_entry", quick_policy());
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind, ward::Errc::crashed) << p.error().message();
  EXPECT_EQ(p.error().function, "<load>");
}

TEST(Faults, ConstructorRunsUnderTheSandbox) {
  auto p = ward::Instance<probe_api>::load(plugin("ctor_open"), "probe_entry", quick_policy());
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind, ward::Errc::violation) << p.error().message();
  EXPECT_NE(p.error().detail.find("open"), std::string::npos) << p.error().detail;
}

TEST(Faults, MissingPluginFile) {
  auto p = ward::Instance<probe_api>::load(plugin("does_not_exist"), "probe_entry");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind, ward::Errc::load_failed);
  EXPECT_NE(p.error().detail.find("No such file"), std::string::npos) << p.error().detail;
}

TEST(Faults, MissingEntrySymbol) {
  auto p = ward::Instance<probe_api>::load(plugin("no_entry"), "probe_entry");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind, ward::Errc::load_failed);
  EXPECT_NE(p.error().detail.find("probe_entry"), std::string::npos) << p.error().detail;
}

TEST(Faults, NotASharedObject) {
  auto p = ward::Instance<probe_api>::load(std::string(WARD_SOURCE_DIR) + "/README.md", "probe_entry");
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind, ward::Errc::load_failed) << p.error().message();
}

TEST(Faults, KilledFromOutsideIsCrash) {
  auto p = load_probe("probe_ok");
  p.domain().kill();
  auto r = p.call<&probe_api::run>(5L);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::crashed) << r.error().message();
  EXPECT_EQ(r.error().signal, SIGKILL);
}

TEST(Faults, BufferLargerThanTheArenaIsMisuseAndDomainSurvives) {
  auto pol = ward::Policy::builder().arena_size(256 << 10).build();
  ASSERT_TRUE(pol);
  auto p = ward::Instance<probe_api>::load(plugin("probe_ok"), "probe_entry", *pol);
  ASSERT_TRUE(p);
  std::vector<unsigned char> big(1 << 20);
  auto r = p->call<&probe_api::poke>(big.data(), big.size());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse) << r.error().message();
  EXPECT_NE(r.error().detail.find("larger than the arena"), std::string::npos);
  auto ok = p->call<&probe_api::run>(1L);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_TRUE(p->domain().alive());
}

TEST(Faults, NullBufferWithSizeIsMisuse) {
  auto p = load_probe("probe_ok");
  auto r = p.call<&probe_api::poke>(static_cast<unsigned char*>(nullptr), std::size_t{8});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse);
  EXPECT_TRUE(p.domain().alive());
}

TEST(Faults, DestroyingADomainReapsItsChild) {
  pid_t pid;
  {
    auto p = load_probe("probe_ok");
    pid = ward::pid_of(p.domain());
    EXPECT_EQ(kill(pid, 0), 0);
  }
  EXPECT_NE(kill(pid, 0), 0);
}

}  // namespace

// A hostile plugin forging channel messages (examples/plugins/forge_reply.c).
namespace {

static_assert(offsetof(ward::wire::Control, arena_size) == 16);
static_assert(offsetof(ward::wire::Control, to_child) == 128);
static_assert(offsetof(ward::wire::Control, to_host) == 192);
static_assert(offsetof(ward::wire::Doorbell, msg) == 16);
static_assert(offsetof(ward::wire::Msg, table) == 2 && offsetof(ward::wire::Msg, fn) == 4);
static_assert(offsetof(ward::wire::Msg, frame_off) == 8 && offsetof(ward::wire::Msg, top) == 24);

class Forgery : public ::testing::TestWithParam<std::pair<std::size_t, const char*>> {};

TEST_P(Forgery, IsAViolationDetectedBeforeTheTimeout) {
  auto pol = ward::Policy::builder().timeout(20s).build();
  ASSERT_TRUE(pol);
  auto p = ward::Instance<probe_api>::load(plugin("forge_reply"), "probe_entry", *pol);
  ASSERT_TRUE(p) << p.error().message();
  static constexpr probe_host host{[](const char*) {}};
  ASSERT_TRUE(p->call<&probe_api::init>(&host));
  unsigned char buf[8];
  std::memset(buf, 0x33, sizeof buf);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = p->call<&probe_api::poke>(buf, GetParam().first);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::violation) << r.error().message();
  EXPECT_NE(r.error().detail.find(GetParam().second), std::string::npos) << r.error().detail;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);  // not the 20 s timeout
  for (unsigned char c : buf) EXPECT_EQ(c, 0x33);
  EXPECT_FALSE(p->domain().alive());
}

INSTANTIATE_TEST_SUITE_P(Channel, Forgery,
                         ::testing::Values(std::make_pair(std::size_t{1}, "malformed reply"),
                                           std::make_pair(std::size_t{2}, "malformed reply"),
                                           std::make_pair(std::size_t{3}, "unknown host service"),
                                           std::make_pair(std::size_t{4}, "without NUL"),
                                           std::make_pair(std::size_t{5}, "outside the arena")));

}  // namespace

// Logical protection domains: the host services a domain is granted, and nothing else.
namespace {

int g_logged = 0;
constexpr probe_host kCountingHost{[](const char*) { ++g_logged; }};

TEST(Grants, AnUngrantedServiceCallIsAViolationThatNeverReachesTheHost) {
  auto pol = ward::Policy::builder().grant_none().build();
  ASSERT_TRUE(pol);
  auto p = ward::Instance<probe_api>::load(plugin("busy_log"), "probe_entry", *pol);
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_TRUE(p->domain().granted_services().empty());
  ASSERT_TRUE(p->call<&probe_api::init>(&kCountingHost));
  g_logged = 0;
  auto r = p->call<&probe_api::run>(3L);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::violation) << r.error().message();
  EXPECT_NE(r.error().detail.find("probe_host::log"), std::string::npos) << r.error().detail;
  EXPECT_NE(r.error().detail.find("not granted"), std::string::npos) << r.error().detail;
  EXPECT_EQ(g_logged, 0);
}

TEST(Grants, GrantedServicesWorkAndAreVisible) {
  auto pol = ward::Policy::builder().grant(ward::service<&probe_host::log>()).build();
  ASSERT_TRUE(pol);
  EXPECT_NE(pol->describe().find("services granted: probe_host::log"), std::string::npos);
  auto p = ward::Instance<probe_api>::load(plugin("busy_log"), "probe_entry", *pol);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->domain().granted_services(), std::vector<std::string>{"probe_host::log"});
  ASSERT_TRUE(p->call<&probe_api::init>(&kCountingHost));
  g_logged = 0;
  auto r = p->call<&probe_api::run>(4L);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(g_logged, 4);
}

TEST(Grants, PerFunctionWithinAnInterface) {
  // device_host has log and now_ns; grant only now_ns: log_echo's first log() is refused.
  auto pol = ward::Policy::builder().grant("device_host::now_ns").build();
  ASSERT_TRUE(pol);
  auto p = ward::Instance<device_api>::load(plugin("device"), "device_entry", *pol);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->domain().granted_services(), std::vector<std::string>{"device_host::now_ns"});
  static constexpr device_host host{[](const char*) {}, [] { return std::uint64_t{1}; }};
  ASSERT_TRUE(p->call<&device_api::init>(&host));
  auto r = p->call<&device_api::log_echo>("x", 1L);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("device_host::log"), std::string::npos) << r.error().detail;
}

TEST(Grants, WholeInterfaceGrant) {
  auto pol = ward::Policy::builder().grant("device_host").build();
  ASSERT_TRUE(pol);
  auto p = ward::Instance<device_api>::load(plugin("device"), "device_entry", *pol);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->domain().granted_services().size(), 2u);
}

}  // namespace
