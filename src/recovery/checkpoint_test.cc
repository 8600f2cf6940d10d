// Checkpoints (recovery/checkpoint.h): a recovery that restores a checkpoint and replays the
// calls logged after it leaves the extension as a full replay of its history does; the plugin is
// as sandboxed after a restore as before; what a checkpoint cannot capture is refused clearly.
//
// The ckpt_model plugin (examples/plugins/ckpt_model.c) keeps state in every place a checkpoint
// must reach: a heap array it trains, heap nodes .bss points to, counters in .data, a block its
// constructor allocated. digest() hashes all of it, so "the same observable state" is one value.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "ckpt_model_host.h"
#include "kv_host.h"
#include "opaque_lib.h"
#include "ward/recovery/supervisor.h"

// The opaque_lib plugin's table with objects a checkpoint holds and the host closes later:
// db_destroy releases the token (replay_log.h).
struct olib_ckpt_api {
  olib_db* (*db_create)(const char* name);
  olib_db* (*db_create_scratch)(const char* name);
  int (*db_open)(const char* name, olib_db** out);
  long (*db_put)(olib_db* db, long v);
  long (*db_sum)(const olib_db* db);
  olib_db* (*db_same)(olib_db* db);
  void (*db_destroy)(olib_db* db);
  void* (*cursor_new)(olib_db* db);
  long (*cursor_next)(void* cur);
  olib_db* (*wild)(void);
  int (*wild_out)(olib_db** out);
  long (*is_wild)(olib_db* db);
  long (*calls)(void);
  long (*visit)(olib_db* db, const olib_host* host);
};
static_assert(sizeof(olib_ckpt_api) == sizeof(olib_api));
WARD_INTERFACE(olib_host, (seen, ward::opaque(0)));
WARD_INTERFACE(olib_ckpt_api,
               (db_create, ward::cstring(0), ward::returns_opaque, ward::replay_after_restart),
               (db_create_scratch, ward::cstring(0), ward::returns_opaque),
               (db_open, ward::cstring(0), ward::out_opaque(1)),
               (db_put, ward::opaque(0), ward::replay_after_restart),
               (db_sum, ward::opaque(0), ward::idempotent),
               (db_same, ward::opaque(0), ward::returns_opaque),
               (db_destroy, ward::opaque(0), ward::releases(0)),
               (cursor_new, ward::opaque(0), ward::returns_opaque),
               (cursor_next, ward::opaque(0)),
               (wild, ward::returns_opaque),
               (wild_out, ward::out_opaque(0)),
               (is_wild, ward::opaque(0)),
               (calls),
               (visit, ward::opaque(0), ward::services(1)));

namespace {

using namespace std::chrono_literals;
using Model = ward::Extension<ckpt_model_api>;

std::string plugin(const char* name) { return std::string(WARD_PLUGIN_DIR) + "/lib" + name + ".so"; }

ward::Policy quick() {
  auto p = ward::Policy::builder().timeout(5s).memory(512ull << 20).build();
  EXPECT_TRUE(p);
  return *p;
}

ward::RestartPolicy restarts(std::uint64_t heap_bytes, std::uint64_t every = 0) {
  ward::RestartPolicy rp{.max_restarts = 1000, .window = 1ms};
  rp.checkpoint = {.heap_bytes = heap_bytes, .every_logged = every};
  return rp;
}

std::unique_ptr<Model> load(const ward::RestartPolicy& rp, const char* name = "ckpt_model") {
  auto e = ward::Supervisor(rp).load<ckpt_model_api>(plugin(name), "ckpt_model_entry", quick());
  EXPECT_TRUE(e) << e.error().message();
  return e ? std::move(*e) : nullptr;
}

std::uint64_t digest(Model& m) {
  auto d = m.call<&ckpt_model_api::digest>();
  EXPECT_TRUE(d) << d.error().message();
  return d ? d->unverified_value_i_trust_it() : 0;
}

// Random state-setting calls, the same on both extensions.
void churn(std::mt19937& rng, int n, Model& a, Model& b) {
  for (int i = 0; i < n; ++i) {
    const unsigned dice = rng() % 100;
    const std::uint32_t key = rng() % 200;
    const std::uint64_t v = rng();
    for (Model* m : {&a, &b}) {
      bool ok;
      if (dice < 5) ok = m->call<&ckpt_model_api::train>(v, 3u).has_value();
      else if (dice < 25) ok = m->call<&ckpt_model_api::del>(key).has_value();
      else ok = m->call<&ckpt_model_api::set>(key, v).has_value();
      ASSERT_TRUE(ok) << "call " << i;
    }
  }
}

// A checkpoint, more calls, a crash: the checkpointed extension (restore + the tail) and one
// that replays everything end in the same state as before the crash, each of two times.
TEST(Checkpoint, RestoredPlusTailEqualsFullReplay) {
  auto ck = load(restarts(64 << 20));
  auto full = load(restarts(0));
  ASSERT_TRUE(ck && full);
  std::mt19937 rng(7);
  for (Model* m : {ck.get(), full.get()}) {
    ASSERT_TRUE(m->call<&ckpt_model_api::reset>(4096u));
    ASSERT_TRUE(m->call<&ckpt_model_api::train>(99ull, 50u));
  }
  churn(rng, 300, *ck, *full);
  ASSERT_EQ(digest(*ck), digest(*full));
  auto c = ck->checkpoint();
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(ck->stats().log_size, 0u);
  EXPECT_GT(ck->stats().checkpoint_bytes, 4096u * 8);
  for (int round = 0; round < 2; ++round) {
    churn(rng, 100, *ck, *full);
    const std::uint64_t before = digest(*ck);
    ASSERT_EQ(before, digest(*full));
    // One dies inside a call, the other is killed from outside.
    EXPECT_FALSE(ck->call<&ckpt_model_api::crash>());
    full->kill();
    EXPECT_EQ(digest(*ck), before) << "round " << round;
    EXPECT_EQ(digest(*full), before) << "round " << round;
  }
  const auto s = ck->stats();
  EXPECT_EQ(s.restored_from_checkpoint, 2u);
  EXPECT_EQ(s.restarts, 2u);
  // Only the tail was replayed; the full log replays (compacted) history.
  EXPECT_LT(s.replayed, full->stats().replayed);
}

// With every_logged, ward takes checkpoints itself: the log stays below the count, and a crash
// still recovers the state.
TEST(Checkpoint, EveryLoggedKeepsTheLogShortAndRecovers) {
  auto ck = load(restarts(64 << 20, 50));
  auto full = load(restarts(0));
  ASSERT_TRUE(ck && full);
  std::mt19937 rng(11);
  for (Model* m : {ck.get(), full.get()}) ASSERT_TRUE(m->call<&ckpt_model_api::reset>(256u));
  churn(rng, 600, *ck, *full);
  const auto s = ck->stats();
  EXPECT_GE(s.checkpoints, 5u);
  EXPECT_EQ(s.checkpoint_failures, 0u);
  EXPECT_LT(s.log_size, 50u);
  const std::uint64_t before = digest(*full);
  ck->kill();
  EXPECT_EQ(digest(*ck), before);
}

// Automatic checkpoints under concurrent callers: each is taken with no call between its
// admission and its logging (a call logged after the copy that the copy already holds would be
// applied twice by the replay: train is not idempotent), so the restored state equals the live
// one. One thread trains (its order is the log's); the others set keys of their own.
TEST(Checkpoint, AutomaticCheckpointsUnderConcurrentCallers) {
  auto ck = load(restarts(64 << 20, 25));
  ASSERT_TRUE(ck);
  ASSERT_TRUE(ck->call<&ckpt_model_api::reset>(1024u));
  // Rounds of concurrent calls, each ended by a kill: each recovery restores the round's last
  // checkpoint, taken while calls were in flight.
  for (std::uint32_t round = 0; round < 12; ++round) {
    std::vector<std::thread> threads;
    for (std::uint32_t t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        for (std::uint32_t i = 0; i < 90; ++i) {
          const bool ok = t == 0 ? ck->call<&ckpt_model_api::train>(std::uint64_t{i + round * 1000}, 1u).has_value()
                                 : ck->call<&ckpt_model_api::set>(t * 1000 + i % 50, std::uint64_t{i}).has_value();
          EXPECT_TRUE(ok) << "thread " << t << " call " << i;
        }
      });
    for (auto& th : threads) th.join();
    const std::uint64_t before = digest(*ck);
    ck->kill();
    ASSERT_EQ(digest(*ck), before) << "round " << round;
  }
  const auto s = ck->stats();
  EXPECT_GE(s.checkpoints, 12u);
  EXPECT_EQ(s.checkpoint_failures, 0u);
  EXPECT_EQ(s.restored_from_checkpoint, 12u);
}

// The sandbox after a restore is the sandbox: fork is still a violation.
TEST(Checkpoint, RestoredPluginStillCannotFork) {
  auto ck = load(restarts(16 << 20));
  ASSERT_TRUE(ck);
  ASSERT_TRUE(ck->call<&ckpt_model_api::set>(1u, 2ull));
  ASSERT_TRUE(ck->checkpoint());
  ck->kill();
  auto g = ck->call<&ckpt_model_api::get>(1u);
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->unverified_value_i_trust_it(), 2u);
  ASSERT_EQ(ck->stats().restored_from_checkpoint, 1u);
  auto f = ck->call<&ckpt_model_api::spawn>();
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().kind, ward::Errc::violation) << f.error().message();
  EXPECT_NE(f.error().detail.find("clone"), std::string::npos) << f.error().message();
}

// Tokens: the ones live at the checkpoint work after a restore; one the host closed after the
// checkpoint is closed in the restored instance too (its closing call is logged), so the plugin's
// 8 database slots are as the host left them and the database created in the freed slot is back.
TEST(Checkpoint, TokensLiveAtTheCheckpointComeBackAndLaterClosesReplay) {
  auto e = ward::Supervisor(restarts(16 << 20)).load<olib_ckpt_api>(plugin("opaque_lib"), "olib_entry", quick());
  ASSERT_TRUE(e) << e.error().message();
  auto& db = **e;
  std::vector<ward::Opaque<olib_db>> dbs;
  for (int i = 0; i < 8; ++i) {
    auto c = db.call<&olib_ckpt_api::db_create>("d");
    ASSERT_TRUE(c && c->token()) << "database " << i;
    dbs.push_back(*c);
    ASSERT_TRUE(db.call<&olib_ckpt_api::db_put>(dbs.back(), 10L + i));
  }
  ASSERT_TRUE(db.checkpoint());
  ASSERT_TRUE(db.call<&olib_ckpt_api::db_destroy>(dbs[3]));
  auto late = db.call<&olib_ckpt_api::db_create>("late");  // takes the freed slot
  ASSERT_TRUE(late && late->token());
  ASSERT_TRUE(db.call<&olib_ckpt_api::db_put>(*late, 5L));
  db.kill();
  for (int i = 0; i < 8; ++i) {
    auto sum = db.call<&olib_ckpt_api::db_sum>(dbs[static_cast<std::size_t>(i)]);
    if (i == 3) {
      ASSERT_FALSE(sum) << "a database closed after the checkpoint stays closed";
      EXPECT_EQ(sum.error().kind, ward::Errc::misuse);
      continue;
    }
    ASSERT_TRUE(sum) << sum.error().message();
    EXPECT_EQ(sum->unverified_value_i_trust_it(), 10L + i);
  }
  auto sum = db.call<&olib_ckpt_api::db_sum>(*late);
  ASSERT_TRUE(sum) << sum.error().message();
  EXPECT_EQ(sum->unverified_value_i_trust_it(), 5L);
  EXPECT_EQ(db.stats().restored_from_checkpoint, 1u);
}

TEST(Checkpoint, RefusesWhatItCannotCapture) {
  // Not declared checkpointable.
  auto plain = load(restarts(0));
  ASSERT_TRUE(plain);
  auto r = plain->checkpoint();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse);
  EXPECT_NE(r.error().detail.find("heap_bytes"), std::string::npos) << r.error().message();

  // Thread-local storage.
  auto tls = load(restarts(16 << 20), "ckpt_tls");
  ASSERT_TRUE(tls);
  ASSERT_TRUE(tls->call<&ckpt_model_api::set>(1u, 2ull));
  r = tls->checkpoint();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse);
  EXPECT_NE(r.error().detail.find("thread-local"), std::string::npos) << r.error().message();
  EXPECT_TRUE(tls->call<&ckpt_model_api::digest>()) << "a refused checkpoint leaves the extension running";

  // A policy that lets the extension hold kernel state.
  auto threads = ward::Policy::builder().timeout(5s).unsafe_allow_threads().build();
  ASSERT_TRUE(threads);
  auto t = ward::Supervisor(restarts(16 << 20)).load<ckpt_model_api>(plugin("ckpt_model"), "ckpt_model_entry", *threads);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().kind, ward::Errc::misuse);
  EXPECT_NE(t.error().detail.find("unsafe_allow_threads"), std::string::npos) << t.error().message();

  // Host objects held by handle (the kv plugin keeps a host buffer from init).
  auto kv = ward::Supervisor(restarts(16 << 20)).load<kv_api>(plugin("kv"), "kv_entry", quick());
  ASSERT_TRUE(kv) << kv.error().message();
  ASSERT_TRUE((*kv)->call<&kv_api::init>(&kvhost::table));
  r = (*kv)->checkpoint();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse);
  EXPECT_NE(r.error().detail.find("by handle"), std::string::npos) << r.error().message();
}

}  // namespace
