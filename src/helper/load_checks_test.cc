// The audit module's load checks (finding 8 of issue 8): an object loaded for a plugin must not
// be able to obtain executable memory from the dynamic loader before the seccomp filter exists.
// Each hostile plugin below would, if loaded, run code it wrote itself (run(1) returns 42); each
// must instead fail to load with `load_failed`, naming the object and the reason.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>

#include "interfaces.h"

namespace {

using namespace std::chrono_literals;

std::string hostile(const std::string& name) { return std::string(WARD_PLUGIN_DIR) + "/hostile/lib" + name + ".so"; }

ward::Policy quick_policy() {
  auto p = ward::Policy::builder().timeout(2s).memory(256ull << 20).build();
  EXPECT_TRUE(p);
  return *p;
}

struct Refusal {
  const char* plugin;  // examples/plugins/hostile/<plugin>.c
  const char* object;  // the object the error must name (the plugin or its dependency)
  const char* reason;  // what the error must say
};

std::ostream& operator<<(std::ostream& os, const Refusal& r) { return os << r.plugin; }

class LoadChecks : public testing::TestWithParam<Refusal> {};

TEST_P(LoadChecks, RefusedWithLoadFailedNamingObjectAndReason) {
  const Refusal& r = GetParam();
  auto p = ward::Instance<probe_api>::load(hostile(r.plugin), "probe_entry", quick_policy());
  if (p) {
    // Say what the refusal would have prevented: code the plugin wrote, running in the child.
    auto ran = p->call<&probe_api::run>(1L);
    FAIL() << r.plugin << " was loaded; run(1) "
           << (ran ? "returned " + std::to_string(ran->unverified_value_i_trust_it()) : ran.error().message());
  }
  EXPECT_EQ(p.error().kind, ward::Errc::load_failed) << p.error().message();
  EXPECT_NE(p.error().detail.find(r.object), std::string::npos) << p.error().detail;
  EXPECT_NE(p.error().detail.find(r.reason), std::string::npos) << p.error().detail;
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, LoadChecks,
    testing::Values(Refusal{"audit_execstack", "libaudit_execstack.so", "executable stack"},
                    Refusal{"audit_dep_execstack", "libaudit_execstack.so", "executable stack"},
                    Refusal{"audit_wx_segment", "libaudit_wx_segment.so", "writable and executable"},
                    Refusal{"audit_textrel", "libaudit_textrel.so", "text relocations"}),
    [](const testing::TestParamInfo<Refusal>& info) { return std::string(info.param.plugin); });

// The checks refuse only what asks for executable memory: an ordinary plugin (and the system
// libraries it pulls in) still loads and works.
TEST(LoadChecks, OrdinaryPluginStillLoadsAndRuns) {
  auto p = ward::Instance<probe_api>::load(std::string(WARD_PLUGIN_DIR) + "/libprobe_ok.so", "probe_entry", quick_policy());
  ASSERT_TRUE(p) << p.error().message();
  auto r = p->call<&probe_api::run>(41L);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->unverified_value_i_trust_it(), 42);
}

// Every example plugin passes the checks: what fails below is only the (deliberately wrong)
// entry symbol, which is looked up after the checks accepted the object.
TEST(LoadChecks, ExamplePluginsPassTheChecks) {
  for (const char* name : {"textxform", "device", "checksum", "kv", "pktfilter", "abi_zoo"}) {
    auto p = ward::Instance<probe_api>::load(std::string(WARD_PLUGIN_DIR) + "/lib" + name + ".so", "no_such_entry",
                                           quick_policy());
    ASSERT_FALSE(p) << name;
    EXPECT_EQ(p.error().kind, ward::Errc::load_failed) << name;
    EXPECT_NE(p.error().detail.find("no_such_entry"), std::string::npos) << name << ": " << p.error().detail;
  }
}

// The same class of bug in the helper itself: the stubs for host services (libffi closures) are
// built before the sandbox, in memory libffi maps writable and executable, and the plugin holds
// pointers to them. Writing there must fault instead of running the plugin's code.
TEST(LoadChecks, HostServiceStubsAreNotWritable) {
  auto p = ward::Instance<probe_api>::load(hostile("audit_closure_rwx"), "probe_entry", quick_policy());
  ASSERT_TRUE(p) << p.error().message();
  static const probe_host host{[](const char*) {}};
  auto init = p->call<&probe_api::init>(&host);
  ASSERT_TRUE(init) << init.error().message();
  auto r = p->call<&probe_api::run>(1L);
  ASSERT_FALSE(r) << "the plugin overwrote a host service stub and ran it: run(1) returned "
                  << r->unverified_value_i_trust_it();
  EXPECT_EQ(r.error().kind, ward::Errc::crashed) << r.error().message();
  EXPECT_EQ(r.error().signal, SIGSEGV) << r.error().message();
}

}  // namespace
