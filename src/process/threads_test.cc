// Several host threads calling one domain. The policy (domain.h): calls are serialized per
// domain, so a stateful plain-C plugin sees one caller at a time and its state stays consistent.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "interfaces.h"

namespace {

using namespace std::chrono_literals;

std::string plugin(const char* name) { return std::string(WARD_PLUGIN_DIR) + "/lib" + name + ".so"; }

TEST(Threads, ConcurrentCallersAreSerializedAndConsistent) {
  auto p = ward::Instance<device_api>::load(plugin("device"), "device_entry");
  ASSERT_TRUE(p) << p.error().message();
  const device_config cfg{16, 64, 1.0, 0};
  ASSERT_TRUE(p->call<&device_api::configure>(&cfg));
  constexpr int kThreads = 4, kCalls = 300;
  std::atomic<int> failures{0}, mismatches{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      std::uint8_t data[16], back[16];
      for (int i = 0; i < kCalls; ++i) {
        // Each thread owns its blocks, so a read must return exactly what that thread wrote.
        const std::uint32_t block = static_cast<std::uint32_t>(t * 16 + i % 16);
        for (int k = 0; k < 16; ++k) data[k] = static_cast<std::uint8_t>(t * 31 + i + k);
        auto w = p->call<&device_api::write>(block, data, sizeof data);
        auto r = p->call<&device_api::read>(block, back, sizeof back);
        if (!w || !r) {
          ++failures;
          continue;
        }
        if (std::memcmp(data, back, sizeof data) != 0) ++mismatches;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  device_stats st{};
  ASSERT_TRUE(p->call<&device_api::stats>(&st));
  // Every write and read was counted once: no lost updates inside the plugin.
  EXPECT_EQ(st.writes, static_cast<std::uint64_t>(kThreads * kCalls));
  EXPECT_EQ(st.reads, static_cast<std::uint64_t>(kThreads * kCalls));
}

TEST(Threads, CallersWaitingBehindAHangAllGetErrors) {
  auto pol = ward::Policy::builder().timeout(300ms).build();
  ASSERT_TRUE(pol);
  auto p = ward::Instance<probe_api>::load(plugin("hang_loop"), "probe_entry", *pol);
  ASSERT_TRUE(p) << p.error().message();
  constexpr int kThreads = 4;
  std::atomic<int> errors{0}, successes{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      auto r = p->call<&probe_api::run>(t == 0 ? 1L : 0L);  // thread 0 hangs the plugin
      (r ? successes : errors)++;
    });
  }
  for (auto& t : ts) t.join();
  // Thread 0 certainly fails; the others either ran before it (success) or fail fast after.
  EXPECT_GE(errors.load(), 1);
  EXPECT_EQ(errors.load() + successes.load(), kThreads);
  auto f = p->domain().failure();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->kind, ward::Errc::hung);
}

TEST(Threads, CrashDuringNestedCallFailsEveryLevel) {
  // The host's log service, called from inside the plugin, crashes the plugin from outside:
  // the nested level and the outer call both report the failure.
  static ward::Instance<probe_api>* self = nullptr;
  static std::optional<ward::Error> inner;
  auto p = ward::Instance<probe_api>::load(plugin("busy_log"), "probe_entry");
  ASSERT_TRUE(p) << p.error().message();
  self = &*p;
  static constexpr probe_host host{[](const char*) {
    self->domain().kill();
    auto r = self->call<&probe_api::run>(0L);
    if (!r) inner = r.error();
  }};
  ASSERT_TRUE(p->call<&probe_api::init>(&host));
  auto outer = p->call<&probe_api::run>(1L);
  ASSERT_FALSE(outer);
  ASSERT_TRUE(inner);
  EXPECT_EQ(outer.error().kind, ward::Errc::crashed) << outer.error().message();
  EXPECT_EQ(inner->kind, ward::Errc::crashed) << inner->message();
  self = nullptr;
}

}  // namespace
