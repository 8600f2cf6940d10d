// Recovery: detection, release, restart, replay, retry, restart policy, heartbeat, extension
// handles that survive restarts, and many threads calling through failures.
#include "progress.h"
#include "ward/recovery/supervisor.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "kv_host.h"
#include "recovery_notices.h"

namespace {

using namespace std::chrono_literals;
using ward_test::Notices;

std::string plugin(const char* name) { return std::string(WARD_PLUGIN_DIR) + "/lib" + name + ".so"; }

ward::Policy quick() {
  auto p = ward::Policy::builder().timeout(300ms).memory(256ull << 20).handles(64).build();
  EXPECT_TRUE(p);
  return *p;
}

struct KvFixture : ::testing::Test {
  void SetUp() override {
    kvhost::live_buffers = 0;
    sup.emplace(ward::RestartPolicy{.max_restarts = 20, .window = 10s}, notices.sink());
    auto e = sup->load<kv_api>(plugin("kv"), "kv_entry", quick());
    ASSERT_TRUE(e) << e.error().message();
    kv = std::move(*e);
    auto r = kv->call<&kv_api::init>(&kvhost::table);
    ASSERT_TRUE(r) << r.error().message();
    ASSERT_EQ(r->unverified_value_i_trust_it(), 0);
    auto t = kv->call<&kv_api::open_table>("users");
    ASSERT_TRUE(t) << t.error().message();
    table = t->unverified_value_i_trust_it();
    for (std::uint32_t k = 0; k < 10; ++k) {
      const std::uint8_t v[3] = {static_cast<std::uint8_t>(k), 7, 9};
      ASSERT_TRUE(kv->call<&kv_api::put>(table, k, v, sizeof v));
    }
  }
  void TearDown() override {
    kv.reset();
    EXPECT_EQ(kvhost::live_buffers.load(), 0) << "host objects leaked";
  }
  // Reads key k back and checks it is what SetUp stored.
  void expect_key(std::uint32_t k) {
    std::uint8_t out[8] = {};
    auto g = kv->call<&kv_api::get>(table, k, out, sizeof out);
    ASSERT_TRUE(g) << g.error().message();
    EXPECT_EQ(g->unverified_value_i_trust_it(), 3);
    EXPECT_EQ(out[0], k);
    EXPECT_EQ(out[2], 9);
  }
  Notices notices;
  std::optional<ward::Supervisor> sup;
  std::unique_ptr<ward::Extension<kv_api>> kv;
  std::uint64_t table = 0;
};

TEST_F(KvFixture, CrashIsRecoveredTransparentlyForIdempotentCalls) {
  const pid_t before = ward::pid_of(kv->domain());
  EXPECT_EQ(kvhost::live_buffers.load(), 1);  // the journal
  ASSERT_TRUE(kv->call<&kv_api::inject>(KV_FAULT_SEGV));
  // get() is idempotent: the caller never notices, and the state came back through replay.
  expect_key(4);
  EXPECT_NE(ward::pid_of(kv->domain()), before);
  EXPECT_EQ(notices.count(ward::NoticeKind::failed), 1);
  EXPECT_EQ(notices.count(ward::NoticeKind::retried), 1);
  auto f = notices.first(ward::NoticeKind::failed);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->cause.kind, ward::Errc::crashed);
  EXPECT_EQ(f->cause.signal, SIGSEGV);
  auto rel = notices.first(ward::NoticeKind::released);
  ASSERT_TRUE(rel);
  EXPECT_EQ(rel->count, 1u);  // the old instance's journal buffer
  auto rs = notices.first(ward::NoticeKind::restarted);
  ASSERT_TRUE(rs);
  EXPECT_EQ(rs->count, 12u);  // init, open_table, 10 puts
  EXPECT_EQ(kvhost::live_buffers.load(), 1);  // the new instance's journal only
  // The table id the host holds still works (translated to the new instance's id).
  auto c = kv->call<&kv_api::count>(table);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->unverified_value_i_trust_it(), 10);
}

TEST_F(KvFixture, NonIdempotentCallGetsTheErrorAndTheNextCallWorks) {
  ASSERT_TRUE(kv->call<&kv_api::inject>(KV_FAULT_ABORT));
  const std::uint8_t v[1] = {1};
  auto p = kv->call<&kv_api::put>(table, 99u, v, sizeof v);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().kind, ward::Errc::crashed);
  EXPECT_EQ(notices.count(ward::NoticeKind::error_to_caller), 1);
  expect_key(1);
  // The failed put was not logged (it never completed): key 99 is absent after recovery.
  std::uint8_t out[8];
  auto g = kv->call<&kv_api::get>(table, 99u, out, sizeof out);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->unverified_value_i_trust_it(), -2);
}

TEST_F(KvFixture, EveryFaultKindIsDetectedAndRecovered) {
  const std::pair<int, ward::Errc> faults[] = {
      {KV_FAULT_SEGV, ward::Errc::crashed},          {KV_FAULT_HANG, ward::Errc::hung},
      {KV_FAULT_WILD_WRITE, ward::Errc::crashed},    {KV_FAULT_SYSCALL, ward::Errc::violation},
      {KV_FAULT_HANDLE_LEAK, ward::Errc::limit},     {KV_FAULT_FORGED, ward::Errc::violation},
      {KV_FAULT_MEMORY, ward::Errc::limit},          {KV_FAULT_EXIT, ward::Errc::exited},
  };
  for (auto [fault, kind] : faults) {
    notices.clear();
    ASSERT_TRUE(kv->call<&kv_api::inject>(fault));
    expect_key(static_cast<std::uint32_t>(fault));
    auto f = notices.first(ward::NoticeKind::failed);
    ASSERT_TRUE(f) << "fault " << fault;
    EXPECT_EQ(f->cause.kind, kind) << "fault " << fault << ": " << f->cause.message();
    EXPECT_EQ(kvhost::live_buffers.load(), 1) << "fault " << fault;
  }
  auto s = kv->stats();
  EXPECT_EQ(s.failures, std::size(faults));
  EXPECT_EQ(s.retried, std::size(faults));
}

TEST_F(KvFixture, ForgedHandleIsNamedAsABadHandle) {
  ASSERT_TRUE(kv->call<&kv_api::inject>(KV_FAULT_FORGED));
  expect_key(2);
  auto f = notices.first(ward::NoticeKind::failed);
  ASSERT_TRUE(f);
  EXPECT_NE(f->cause.detail.find("bad handle"), std::string::npos) << f->cause.message();
}

TEST_F(KvFixture, UnknownExtensionHandleIsMisuse) {
  auto c = kv->call<&kv_api::count>(std::uint64_t{12345});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ward::Errc::misuse);
  EXPECT_TRUE(kv->domain().alive());
}

TEST(Supervisor, RestartPolicyDisablesAndResetReenables) {
  kvhost::live_buffers = 0;
  Notices notices;
  ward::Supervisor sup({.max_restarts = 2, .window = 30s, .backoff_initial = 1ms, .backoff_max = 5ms}, notices.sink());
  auto kv = sup.load<kv_api>(plugin("kv"), "kv_entry", quick());
  ASSERT_TRUE(kv);
  ASSERT_TRUE((*kv)->call<&kv_api::init>(&kvhost::table));
  for (int i = 0; i < 2; ++i) {
    (*kv)->kill();
    ASSERT_TRUE((*kv)->call<&kv_api::ping>()) << "restart " << i;
  }
  (*kv)->kill();
  auto r = (*kv)->call<&kv_api::ping>();
  ASSERT_FALSE(r);
  EXPECT_TRUE((*kv)->disabled());
  EXPECT_NE(r.error().detail.find("disabled"), std::string::npos) << r.error().message();
  EXPECT_EQ(notices.count(ward::NoticeKind::disabled), 1);
  // Fails fast while disabled.
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE((*kv)->call<&kv_api::ping>());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  ASSERT_TRUE((*kv)->reset());
  EXPECT_FALSE((*kv)->disabled());
  ASSERT_TRUE((*kv)->call<&kv_api::ping>());
  kv->reset();
  EXPECT_EQ(kvhost::live_buffers.load(), 0);
}

TEST(Supervisor, HeartbeatRecoversAnIdleExtensionThatStoppedAnswering) {
  kvhost::live_buffers = 0;
  Notices notices;
  ward::Supervisor sup({.max_restarts = 5, .window = 30s, .heartbeat = 50ms, .heartbeat_timeout = 200ms},
                       notices.sink());
  auto kv = sup.load<kv_api>(plugin("kv"), "kv_entry", quick());
  ASSERT_TRUE(kv);
  ASSERT_TRUE((*kv)->call<&kv_api::init>(&kvhost::table));
  const pid_t stopped = ward::pid_of((*kv)->domain());
  ASSERT_EQ(kill(stopped, SIGSTOP), 0);
  for (int i = 0; i < 100 && notices.count(ward::NoticeKind::restarted) == 0; ++i) std::this_thread::sleep_for(20ms);
  auto f = notices.first(ward::NoticeKind::failed);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->cause.kind, ward::Errc::hung) << f->cause.message();
  EXPECT_EQ(notices.count(ward::NoticeKind::restarted), 1);
  EXPECT_NE(ward::pid_of((*kv)->domain()), stopped);
  ASSERT_TRUE((*kv)->call<&kv_api::ping>());
  kv->reset();
  EXPECT_EQ(kvhost::live_buffers.load(), 0);
}

TEST(Supervisor, MissingPluginAtLoadIsAnError) {
  ward::Supervisor sup;
  auto kv = sup.load<kv_api>(plugin("nope"), "kv_entry");
  ASSERT_FALSE(kv);
  EXPECT_EQ(kv.error().kind, ward::Errc::load_failed);
}

// Stress: host threads keep calling while the extension is killed at random moments. Every
// result is either correct or an error, nothing hangs, the host survives, and at the end no host
// object is left. WARD_STRESS_KILLS sets the number of kills (CI: a few hundred).
TEST(Stress, RandomKillsUnderAMultithreadedWorkload) {
  int kills = 200;
  if (const char* env = std::getenv("WARD_STRESS_KILLS")) kills = std::max(1, std::atoi(env));
  kvhost::live_buffers = 0;
  Notices notices;
  ward::Supervisor sup({.max_restarts = 1000000, .window = 1s}, notices.sink());
  auto kv = sup.load<kv_api>(plugin("kv"), "kv_entry", quick());
  ASSERT_TRUE(kv);
  auto& ext = **kv;
  ASSERT_TRUE(ext.call<&kv_api::init>(&kvhost::table));
  auto t = ext.call<&kv_api::open_table>("stress");
  ASSERT_TRUE(t);
  const std::uint64_t table = t->unverified_value_i_trust_it();
  for (std::uint32_t k = 0; k < 64; ++k) {
    const std::uint8_t v[2] = {static_cast<std::uint8_t>(k), static_cast<std::uint8_t>(k * 3)};
    ASSERT_TRUE(ext.call<&kv_api::put>(table, k, v, sizeof v));
  }
  std::atomic<bool> stop{false};
  std::atomic<long> ok{0}, errors{0}, wrong{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; ++w) {
    workers.emplace_back([&, w] {
      std::uint32_t k = static_cast<std::uint32_t>(w);
      while (!stop.load()) {
        k = (k * 7 + 1) % 64;
        std::uint8_t out[4] = {};
        auto g = ext.call<&kv_api::get>(table, k, out, sizeof out);
        if (!g) {
          if (++errors <= 3) std::printf("stress: error %s\n", g.error().message().c_str());
          continue;
        }
        if (g->unverified_value_i_trust_it() == 2 && out[0] == k && out[1] == static_cast<std::uint8_t>(k * 3)) ++ok;
        else ++wrong;
      }
    });
  }
  std::mt19937 rng(12345);
  // `make stress` runs thousands of kills: progress on stderr (a bar on a terminal, else a line
  // every 5 s).
  ward::cli::Progress progress({.label = "stress", .total = static_cast<std::uint64_t>(kills), .unit = "kills",
                                .mode = ward::cli::Progress::mode_for(false)});
  for (int i = 0; i < kills; ++i) {
    progress.update(static_cast<std::uint64_t>(i));
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    ext.kill();
    // Let the workers find the failure and recover before the next kill (otherwise the next kill
    // hits the same dead instance and restarts < kills). The bound is by the clock and generous:
    // a loaded or sanitized machine takes far longer than the ~1 ms a recovery usually needs.
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (ext.stats().restarts < static_cast<std::uint64_t>(i + 1) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(200us);
    if (ext.stats().restarts < static_cast<std::uint64_t>(i + 1)) {
      ADD_FAILURE() << "kill " << i << ": no recovery within 20 s";
      break;
    }
  }
  stop = true;
  for (auto& th : workers) th.join();
  progress.update(static_cast<std::uint64_t>(kills));
  progress.finish(std::to_string(ok.load()) + " results verified, " + std::to_string(errors.load()) + " errors, " +
                  std::to_string(wrong.load()) + " wrong");
  const auto s = ext.stats();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(ok.load(), 0);
  EXPECT_GE(s.restarts, static_cast<std::uint64_t>(kills));
  EXPECT_FALSE(ext.disabled());
  ASSERT_TRUE(ext.call<&kv_api::ping>());
  kv->reset();
  EXPECT_EQ(kvhost::live_buffers.load(), 0) << "host objects leaked";
  std::printf("stress: %d kills, %ld correct results, %ld errors, %ld wrong, %llu restarts\n", kills, ok.load(),
              errors.load(), wrong.load(), static_cast<unsigned long long>(s.restarts));
}

}  // namespace

namespace {

// A host whose buf_open ends the calling instance the next `g_fail_opens` times: a failure that
// strikes during replay (init borrows a buffer), i.e. while recovering from the first one.
std::atomic<int> g_fail_opens{0};
std::uint64_t failing_open(std::uint32_t size) {
  if (g_fail_opens.load() > 0 && g_fail_opens.fetch_sub(1) > 0) {
    ward::Domain::calling()->kill();
    return 0;
  }
  return kvhost::buf_open(size);
}
constexpr kv_host kFailingHost{failing_open, kvhost::buf_write, kvhost::buf_close, kvhost::log};

TEST(Supervisor, ASecondFailureDuringReplayIsRecoveredToo) {
  kvhost::live_buffers = 0;
  Notices notices;
  ward::Supervisor sup({.max_restarts = 10, .window = 30s}, notices.sink());
  auto kv = sup.load<kv_api>(plugin("kv"), "kv_entry", quick());
  ASSERT_TRUE(kv);
  ASSERT_TRUE((*kv)->call<&kv_api::init>(&kFailingHost));
  auto t = (*kv)->call<&kv_api::open_table>("t");
  ASSERT_TRUE(t);
  const std::uint8_t v[2] = {5, 6};
  ASSERT_TRUE((*kv)->call<&kv_api::put>(t->unverified_value_i_trust_it(), 1u, v, sizeof v));
  g_fail_opens = 2;  // the first two replays of init die
  (*kv)->kill();
  std::uint8_t out[4] = {};
  auto g = (*kv)->call<&kv_api::get>(t->unverified_value_i_trust_it(), 1u, out, sizeof out);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->unverified_value_i_trust_it(), 2);
  EXPECT_EQ(out[1], 6);
  EXPECT_EQ(notices.count(ward::NoticeKind::restart_failed), 2);
  EXPECT_EQ(notices.count(ward::NoticeKind::restarted), 1);
  EXPECT_EQ(kvhost::live_buffers.load(), 1);
  kv->reset();
  EXPECT_EQ(kvhost::live_buffers.load(), 0);
}

}  // namespace
