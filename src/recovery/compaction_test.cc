// Compaction of the replay log (recovery/replay_log.h): the log holds the live state, not the
// history, and a recovery from the compacted log gives the same observable state as one from the
// full log. The kv plugin is declared twice: kv_api (examples/hosts/interfaces.h) with
// replay_by_key / cancels / releases, and kv_full_api below, the same C table with every
// state-setting call plainly replay_after_restart (the uncompacted log).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <vector>

#include "kv_host.h"
#include "ward/recovery/supervisor.h"

// The kv plugin's table, declared without compaction: every put, del and close is replayed.
struct kv_full_api {
  int (*init)(const kv_host* host);
  uint64_t (*open_table)(const char* name);
  long (*put)(uint64_t table, uint32_t key, const uint8_t* val, size_t n);
  long (*get)(uint64_t table, uint32_t key, uint8_t* out, size_t cap);
  long (*count)(uint64_t table);
  int (*inject)(int fault);
  long (*ping)(void);
  long (*del)(uint64_t table, uint32_t key);
  int (*close_table)(uint64_t table);
};
static_assert(sizeof(kv_full_api) == sizeof(kv_api));
WARD_INTERFACE(kv_full_api,
               (init, ward::services(0), ward::replay_after_restart),
               (open_table, ward::cstring(0), ward::returns_ext_handle, ward::replay_after_restart),
               (put, ward::ext_handle(0), ward::in(2, 3), ward::replay_after_restart),
               (get, ward::ext_handle(0), ward::out(2, 3), ward::idempotent),
               (count, ward::ext_handle(0), ward::idempotent),
               (inject),
               (ping, ward::idempotent),
               (del, ward::ext_handle(0), ward::replay_after_restart),
               (close_table, ward::ext_handle(0), ward::replay_after_restart));

namespace {

using namespace std::chrono_literals;

std::string plugin(const char* name) { return std::string(WARD_PLUGIN_DIR) + "/lib" + name + ".so"; }

ward::Policy quick() {
  auto p = ward::Policy::builder().timeout(2s).memory(256ull << 20).handles(64).build();
  EXPECT_TRUE(p);
  return *p;
}

// A kv extension, initialised (the host's buffer count starts at 0 with the first one).
template <class Api>
std::unique_ptr<ward::Extension<Api>> load_kv(ward::Supervisor& sup) {
  auto e = sup.load<Api>(plugin("kv"), "kv_entry", quick());
  EXPECT_TRUE(e) << e.error().message();
  if (!e) return nullptr;
  auto r = (*e)->template call<&Api::init>(&kvhost::table);
  EXPECT_TRUE(r && r->unverified_value_i_trust_it() == 0);
  return std::move(*e);
}

// What the host can observe of one table: the value of each key in [0, keys), and the count.
template <class Api>
std::map<std::uint32_t, std::vector<std::uint8_t>> observe(ward::Extension<Api>& kv, std::uint64_t table,
                                                           std::uint32_t keys, long* count) {
  std::map<std::uint32_t, std::vector<std::uint8_t>> seen;
  for (std::uint32_t k = 0; k < keys; ++k) {
    std::uint8_t out[64];
    auto g = kv.template call<&Api::get>(table, k, out, sizeof out);
    EXPECT_TRUE(g) << g.error().message();
    if (!g) continue;
    const long n = g->unverified_value_i_trust_it();
    if (n >= 0) seen[k] = std::vector<std::uint8_t>(out, out + std::min<long>(n, sizeof out));
  }
  auto c = kv.template call<&Api::count>(table);
  EXPECT_TRUE(c);
  *count = c ? c->unverified_value_i_trust_it() : -99;
  return seen;
}

using Model = std::map<std::uint32_t, std::vector<std::uint8_t>>;

// A random sequence of puts, dels, table opens and closes, run on both declarations and on a
// model; both extensions are killed from time to time and must then show the model's state. The
// compacted log holds only what is live: tables open, one put per live key, and the dels that
// found nothing to cancel (at most one per key).
TEST(Compaction, RecoveredStateEqualsTheUncompactedLogsAndTheModel) {
  ward::Supervisor sup({.max_restarts = 1000, .window = 1ms});
  kvhost::live_buffers = 0;
  auto kc = load_kv<kv_api>(sup);
  auto kf = load_kv<kv_full_api>(sup);
  ASSERT_TRUE(kc && kf);
  constexpr std::uint32_t kKeys = 40;
  struct Table {
    std::uint64_t c = 0, f = 0;  // the tokens each extension gave for it
    Model model;
  };
  std::vector<Table> open;
  std::mt19937 rng(1234);
  auto open_one = [&] {
    const std::string name = "t" + std::to_string(rng() % 1000);
    auto c = kc->call<&kv_api::open_table>(name.c_str());
    auto f = kf->call<&kv_full_api::open_table>(name.c_str());
    ASSERT_TRUE(c && f);
    open.push_back({c->unverified_value_i_trust_it(), f->unverified_value_i_trust_it(), {}});
  };
  auto compare = [&](const char* when) {
    for (Table& t : open) {
      long cc = 0, cf = 0;
      auto sc = observe(*kc, t.c, kKeys, &cc);
      auto sf = observe(*kf, t.f, kKeys, &cf);
      EXPECT_EQ(sc, t.model) << when;
      EXPECT_EQ(sf, t.model) << when;
      EXPECT_EQ(cc, static_cast<long>(t.model.size())) << when;
      EXPECT_EQ(cf, static_cast<long>(t.model.size())) << when;
    }
  };
  open_one();
  std::size_t dels_of_absent_keys_bound = 0;
  for (int round = 0; round < 6; ++round) {
    for (int op = 0; op < 400; ++op) {
      const unsigned dice = rng() % 100;
      if (open.empty() || (dice < 3 && open.size() < 6)) {
        open_one();
        continue;
      }
      Table& t = open[rng() % open.size()];
      const std::uint32_t k = rng() % kKeys;
      if (dice < 5 && open.size() > 1) {  // close
        const std::size_t i = static_cast<std::size_t>(&t - open.data());
        auto c = kc->call<&kv_api::close_table>(t.c);
        auto f = kf->call<&kv_full_api::close_table>(t.f);
        ASSERT_TRUE(c && f);
        EXPECT_EQ(c->unverified_value_i_trust_it(), 0);
        open.erase(open.begin() + static_cast<long>(i));
      } else if (dice < 30) {  // del
        auto c = kc->call<&kv_api::del>(t.c, k);
        auto f = kf->call<&kv_full_api::del>(t.f, k);
        ASSERT_TRUE(c && f);
        EXPECT_EQ(c->unverified_value_i_trust_it(), t.model.contains(k) ? 0 : -2);
        t.model.erase(k);
      } else {  // put
        std::vector<std::uint8_t> v(1 + rng() % 8);
        for (auto& b : v) b = static_cast<std::uint8_t>(rng());
        auto c = kc->call<&kv_api::put>(t.c, k, v.data(), v.size());
        auto f = kf->call<&kv_full_api::put>(t.f, k, v.data(), v.size());
        ASSERT_TRUE(c && f);
        t.model[k] = v;
      }
    }
    kc->kill();
    kf->kill();
    compare("after a restart");
    // init + each open table + one put per live key + at most one del per (table, key).
    std::size_t live = 1;
    for (const Table& t : open) live += 1 + t.model.size();
    dels_of_absent_keys_bound = open.size() * kKeys;
    EXPECT_GE(kc->stats().log_size, live);
    EXPECT_LE(kc->stats().log_size, live + dels_of_absent_keys_bound);
  }
  EXPECT_EQ(kc->stats().restarts, 6u);
  EXPECT_EQ(kf->stats().restarts, 6u);
  // The uncompacted log holds the history: every call that set state.
  EXPECT_GT(kf->stats().log_size, 2000u);
  EXPECT_LT(kc->stats().log_size, 400u);
  kc.reset();
  kf.reset();
  EXPECT_EQ(kvhost::live_buffers.load(), 0);
}

// 10^5 puts over 100 keys leave init, the table and 100 puts in the log, and every value comes
// back after a restart.
TEST(Compaction, ManyPutsOverFewKeysKeepOneEntryPerKey) {
  ward::Supervisor sup({.max_restarts = 10, .window = 1ms});
  auto kv = load_kv<kv_api>(sup);
  ASSERT_TRUE(kv);
  auto t = kv->call<&kv_api::open_table>("many");
  ASSERT_TRUE(t);
  const std::uint64_t table = t->unverified_value_i_trust_it();
  constexpr int kPuts = 100000;
  for (int i = 0; i < kPuts; ++i) {
    const std::uint8_t v[4] = {static_cast<std::uint8_t>(i), static_cast<std::uint8_t>(i >> 8),
                               static_cast<std::uint8_t>(i >> 16), 0};
    ASSERT_TRUE(kv->call<&kv_api::put>(table, static_cast<std::uint32_t>(i % 100), v, sizeof v));
  }
  EXPECT_EQ(kv->stats().log_size, 102u);
  EXPECT_EQ(kv->stats().log_recorded, static_cast<std::uint64_t>(kPuts) + 2);
  kv->kill();
  for (std::uint32_t k = 0; k < 100; ++k) {
    std::uint8_t out[8] = {};
    auto g = kv->call<&kv_api::get>(table, k, out, sizeof out);
    ASSERT_TRUE(g) << g.error().message();
    ASSERT_EQ(g->unverified_value_i_trust_it(), 4);
    const int last = kPuts - 100 + static_cast<int>(k);  // the last i with i % 100 == k
    EXPECT_EQ(out[0], static_cast<std::uint8_t>(last));
    EXPECT_EQ(out[1], static_cast<std::uint8_t>(last >> 8));
    EXPECT_EQ(out[2], static_cast<std::uint8_t>(last >> 16));
  }
  EXPECT_EQ(kv->stats().replayed, 102u);
}

// A del that cancels a put leaves neither in the log; one that finds no put is kept once per key
// (it may undo state the log does not hold as a put); closing a table drops all of its calls and
// its token.
TEST(Compaction, DelsAndClosesDropWhatTheyUndo) {
  ward::Supervisor sup({.max_restarts = 10, .window = 1ms});
  auto kv = load_kv<kv_api>(sup);
  ASSERT_TRUE(kv);
  auto a = kv->call<&kv_api::open_table>("a");
  auto b = kv->call<&kv_api::open_table>("b");
  ASSERT_TRUE(a && b);
  const std::uint64_t ta = a->unverified_value_i_trust_it(), tb = b->unverified_value_i_trust_it();
  const std::uint8_t v[2] = {5, 6};
  ASSERT_TRUE(kv->call<&kv_api::put>(ta, 1u, v, sizeof v));
  ASSERT_TRUE(kv->call<&kv_api::put>(tb, 1u, v, sizeof v));  // same key, other table: its own entry
  EXPECT_EQ(kv->stats().log_size, 5u);
  ASSERT_TRUE(kv->call<&kv_api::del>(ta, 1u));
  EXPECT_EQ(kv->stats().log_size, 4u);  // the put and the del are gone
  ASSERT_TRUE(kv->call<&kv_api::del>(ta, 7u));
  ASSERT_TRUE(kv->call<&kv_api::del>(ta, 7u));
  EXPECT_EQ(kv->stats().log_size, 5u);  // one del of an absent key, kept once
  ASSERT_TRUE(kv->call<&kv_api::put>(tb, 2u, v, sizeof v));
  auto c = kv->call<&kv_api::close_table>(tb);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->unverified_value_i_trust_it(), 0);
  EXPECT_EQ(kv->stats().log_size, 3u);  // init, open a, del(a, 7)
  auto gone = kv->call<&kv_api::count>(tb);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind, ward::Errc::misuse);
  kv->kill();
  auto n = kv->call<&kv_api::count>(ta);
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(n->unverified_value_i_trust_it(), 0);
  EXPECT_EQ(kv->stats().replayed, 3u);
  gone = kv->call<&kv_api::count>(tb);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().kind, ward::Errc::misuse);
}

// The log itself, without processes: keys are per function and scope (a descriptor object's
// token), a cancel reaches only its own scope, releasing a token drops what made or took it, and
// a kept entry replays in the order it was logged.
TEST(Compaction, LogKeysAreScopedAndReleaseDropsByToken) {
  using ward::detail::ReplayLog;
  struct NoInstance final : ward::detail::LiveInstance {
    ward::Domain& domain() override { std::abort(); }  // the entries here never look
  } none;
  ReplayLog log;
  std::vector<int> order;
  auto entry = [&](std::uint32_t fn, std::uint64_t scope, std::string key, bool keyed, std::vector<std::uint64_t> tokens,
                   int tag) {
    ReplayLog::Entry e{fn, [&order, tag](ward::detail::LiveInstance&) -> ward::Result<void> {
                         order.push_back(tag);
                         return {};
                       },
                       scope, 0};
    e.keyed = keyed;
    e.key = std::move(key);
    e.tokens = std::move(tokens);
    return e;
  };
  log.record(entry(0, 0, "", false, {77}, 1));       // makes token 77
  log.record(entry(1, 10, "k", true, {77}, 2));      // object 10: put(k) on 77
  log.record(entry(1, 11, "k", true, {}, 3));        // object 11: same function and key
  log.record(entry(1, 10, "k", true, {77}, 4));      // replaces 2
  EXPECT_EQ(log.size(), 3u);
  const ReplayLog::Cancel c{1, "k"};
  log.record(entry(2, 11, "k", true, {}, 5), &c);   // cancels 3 only (scope 11), not logged
  EXPECT_EQ(log.size(), 2u);
  log.record(entry(2, 11, "k", true, {}, 6), &c);   // nothing to cancel: kept
  EXPECT_EQ(log.size(), 3u);
  for (auto& e : log.entries()) ASSERT_TRUE(e.replay(none));
  EXPECT_EQ(order, (std::vector<int>{1, 4, 6}));
  log.release(77);
  EXPECT_EQ(log.size(), 1u);
  order.clear();
  for (auto& e : log.entries()) ASSERT_TRUE(e.replay(none));
  EXPECT_EQ(order, (std::vector<int>{6}));
}

}  // namespace
