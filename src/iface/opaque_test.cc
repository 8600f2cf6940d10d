// Opaque pointers (ward::opaque, ward::returns_opaque, ward::out_opaque; iface/opaque.h): a
// library's own objects reach the host as typed tokens that stand for the extension's pointer
// and are checked when passed back. Against a real child (examples/plugins/opaque_lib.c), which
// checks every pointer it receives against its own objects, so each test sees exactly what
// crossed; and under a Supervisor, where replayed calls keep their tokens across a restart.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <unordered_set>

#include "opaque_lib.h"
#include "ward/ward.h"

WARD_INTERFACE(olib_host, (seen, ward::opaque(0)));
WARD_INTERFACE(olib_api,
               (db_create, ward::cstring(0), ward::returns_opaque, ward::replay_after_restart),
               (db_create_scratch, ward::cstring(0), ward::returns_opaque),
               (db_open, ward::cstring(0), ward::out_opaque(1), ward::replay_after_restart),
               (db_put, ward::opaque(0), ward::replay_after_restart),
               (db_sum, ward::opaque(0), ward::idempotent),
               (db_same, ward::opaque(0), ward::returns_opaque),
               (db_destroy, ward::opaque(0), ward::nullable(0)),
               (cursor_new, ward::opaque(0), ward::returns_opaque),
               (cursor_next, ward::opaque(0)),
               (wild, ward::returns_opaque),
               (wild_out, ward::out_opaque(0)),
               (is_wild, ward::opaque(0)),
               (calls),
               (visit, ward::opaque(0), ward::services(1)));

namespace {

using namespace std::chrono_literals;
using Db = ward::Opaque<olib_db>;

std::string plugin() { return std::string(WARD_PLUGIN_DIR) + "/libopaque_lib.so"; }

ward::Result<ward::Instance<olib_api>> load() { return ward::Instance<olib_api>::load(plugin(), "olib_entry"); }

// What the extension computed, for the checks (the values themselves are not verified here).
template <class T>
T val(const ward::Result<ward::Tainted<T>>& r) {
  EXPECT_TRUE(r) << r.error().message();
  return r ? r->unverified_value_i_trust_it() : T{};
}

// Neither a canonical x86-64 address (bits 47..63 all equal, or 56..63 with 5-level paging) nor 0.
bool never_an_address(std::uint64_t t) {
  const std::uint64_t top17 = t >> 47, top8 = t >> 56;
  return t != 0 && top17 != 0 && top17 != 0x1ffff && top8 != 0 && top8 != 0xff;
}

void expect_misuse(const ward::Error& e, const std::string& words) {
  EXPECT_EQ(e.kind, ward::Errc::misuse) << e.message();
  EXPECT_NE(e.detail.find(words), std::string::npos) << e.message();
  EXPECT_NE(e.detail.find("parameter 0"), std::string::npos) << e.message();
}

struct Opaque : ::testing::Test {
  void SetUp() override {
    auto i = load();
    ASSERT_TRUE(i) << i.error().message();
    inst.emplace(std::move(*i));
  }
  // Calls the extension received so far.
  long calls() { return val(inst->call<&olib_api::calls>()) - 1; }
  std::optional<ward::Instance<olib_api>> inst;
};

TEST_F(Opaque, CreateUseDestroyThroughTokens) {
  auto h = inst->call<&olib_api::db_create>("a");
  ASSERT_TRUE(h) << h.error().message();
  static_assert(std::is_same_v<decltype(h), ward::Result<Db>>);
  ASSERT_TRUE(*h);
  EXPECT_TRUE(never_an_address(h->token())) << std::hex << h->token();
  EXPECT_EQ(val(inst->call<&olib_api::db_put>(*h, 5)), 5);
  EXPECT_EQ(val(inst->call<&olib_api::db_put>(*h, 7)), 12);
  EXPECT_EQ(val(inst->call<&olib_api::db_sum>(*h)), 12);  // a const olib_db * parameter
  // The same pointer of the same type is the same token: tokens compare as pointers do.
  auto same = inst->call<&olib_api::db_same>(*h);
  ASSERT_TRUE(same);
  EXPECT_EQ(*same, *h);
  auto other = inst->call<&olib_api::db_create>("b");
  ASSERT_TRUE(other && *other);
  EXPECT_NE(*other, *h);
  EXPECT_EQ(inst->domain().opaques().size(), 2u);
  ASSERT_TRUE(inst->call<&olib_api::db_destroy>(*h));
  // The token outlives the object (ward cannot know db_destroy frees it): the extension gets its
  // old pointer back and says it is no database any more.
  EXPECT_EQ(val(inst->call<&olib_api::db_sum>(*h)), -1);
  ASSERT_TRUE(inst->call<&olib_api::db_destroy>(Db{}));  // ward::nullable: like free(NULL)
}

TEST_F(Opaque, NullResultIsANullTokenAndNullIsRefusedWhereNotNullable) {
  auto h = inst->call<&olib_api::db_create>("");
  ASSERT_TRUE(h) << h.error().message();
  EXPECT_FALSE(*h);
  EXPECT_EQ(h->token(), 0u);
  const long before = calls();
  auto s = inst->call<&olib_api::db_put>(*h, 1);
  ASSERT_FALSE(s);
  expect_misuse(s.error(), "null opaque pointer");
  EXPECT_EQ(calls(), before + 1);  // only calls() itself: the refused call was never sent
}

TEST_F(Opaque, VoidHandle) {
  auto h = inst->call<&olib_api::db_create>("a");
  ASSERT_TRUE(h && *h);
  auto cur = inst->call<&olib_api::cursor_new>(*h);
  ASSERT_TRUE(cur) << cur.error().message();
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(*cur)>, ward::Opaque<void>>);
  ASSERT_TRUE(*cur);
  for (long i = 0; i < 3; ++i) EXPECT_EQ(val(inst->call<&olib_api::cursor_next>(*cur)), i);
}

TEST_F(Opaque, OutParameterReceivesAToken) {
  olib_db* d = nullptr;
  EXPECT_EQ(val(inst->call<&olib_api::db_open>("b", &d)), 0);
  ASSERT_NE(d, nullptr);
  EXPECT_TRUE(never_an_address(reinterpret_cast<std::uintptr_t>(d)));
  EXPECT_EQ(val(inst->call<&olib_api::db_put>(d, 3)), 3);
  EXPECT_EQ(val(inst->call<&olib_api::db_sum>(Db(d))), 3);
  // The library's own failure: NULL stored, a null token delivered, no error.
  olib_db* none = reinterpret_cast<olib_db*>(std::uintptr_t{1});
  EXPECT_EQ(val(inst->call<&olib_api::db_open>("", &none)), -1);
  EXPECT_EQ(none, nullptr);
  // A null T ** where the declaration does not allow it: refused, nothing sent.
  auto r = inst->call<&olib_api::db_open>("c", nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse);
}

// Hostile: a wild pointer is harmless to the host, which only ever holds its token; passed back,
// the extension receives exactly its own value.
TEST_F(Opaque, WildPointerIsOnlyAToken) {
  auto w = inst->call<&olib_api::wild>();
  ASSERT_TRUE(w) << w.error().message();
  ASSERT_TRUE(*w);
  EXPECT_NE(w->token(), OLIB_WILD);
  EXPECT_TRUE(never_an_address(w->token()));
  EXPECT_EQ(val(inst->call<&olib_api::is_wild>(*w)), 1);
  EXPECT_EQ(val(inst->call<&olib_api::db_sum>(*w)), -1);
  olib_db* out = nullptr;
  ASSERT_TRUE(inst->call<&olib_api::wild_out>(&out));
  EXPECT_EQ(Db(out), *w);  // the same wild value, the same token
  EXPECT_TRUE(inst->domain().alive());
}

// Hostile host-side values: made-up tokens, real host addresses and tokens one bit off are
// refused before anything is sent, and the extension lives on.
TEST_F(Opaque, ForgedTokensAreRefusedBeforeSending) {
  auto h = inst->call<&olib_api::db_create>("a");
  ASSERT_TRUE(h && *h);
  int local = 0;
  const std::uint64_t forged[] = {0x1234, reinterpret_cast<std::uintptr_t>(&local), h->token() ^ 1, h->token() + 8,
                                  OLIB_WILD};
  const long before = calls();
  for (const std::uint64_t f : forged) {
    auto r = inst->call<&olib_api::db_sum>(reinterpret_cast<olib_db*>(f));
    ASSERT_FALSE(r) << std::hex << f;
    expect_misuse(r.error(), "unknown opaque pointer");
  }
  EXPECT_EQ(calls(), before + 1);
  EXPECT_TRUE(inst->domain().alive());
  EXPECT_EQ(val(inst->call<&olib_api::db_sum>(*h)), 0);
}

TEST_F(Opaque, TokenOfAnotherTypeIsRefused) {
  auto h = inst->call<&olib_api::db_create>("a");
  ASSERT_TRUE(h && *h);
  auto cur = inst->call<&olib_api::cursor_new>(*h);
  ASSERT_TRUE(cur && *cur);
  const long before = calls();
  auto r = inst->call<&olib_api::db_sum>(static_cast<olib_db*>(static_cast<void*>(*cur)));
  ASSERT_FALSE(r);
  expect_misuse(r.error(), "of another type");
  auto n = inst->call<&olib_api::cursor_next>(static_cast<void*>(*h));  // olib_db * converts to void *
  ASSERT_FALSE(n);
  expect_misuse(n.error(), "of another type");
  EXPECT_EQ(calls(), before + 1);
}

TEST_F(Opaque, TokenFromAnotherDomainIsRefused) {
  auto other = load();
  ASSERT_TRUE(other) << other.error().message();
  auto mine = inst->call<&olib_api::db_create>("a");
  auto theirs = other->call<&olib_api::db_create>("a");
  ASSERT_TRUE(mine && *mine && theirs && *theirs);
  // Each domain draws its own random tokens.
  EXPECT_NE(*mine, *theirs);
  auto r = other->call<&olib_api::db_sum>(*mine);
  ASSERT_FALSE(r);
  expect_misuse(r.error(), "unknown opaque pointer");
  EXPECT_EQ(val(other->call<&olib_api::db_sum>(*theirs)), 0);
}

// From the extension into a host service: the service receives the token for the pointer, the
// same one the host already holds for it.
TEST(OpaqueService, AHostServiceReceivesTokens) {
  static Db g_seen;
  static constexpr olib_host kHost{[](olib_db* db) -> long {
    g_seen = Db(db);
    return 7;
  }};
  auto pol = ward::Policy::builder().grant("olib_host").build();
  ASSERT_TRUE(pol);
  auto inst = ward::Instance<olib_api>::load(plugin(), "olib_entry", *pol);
  ASSERT_TRUE(inst) << inst.error().message();
  auto h = inst->call<&olib_api::db_create>("a");
  auto w = inst->call<&olib_api::wild>();
  ASSERT_TRUE(h && *h && w && *w);
  EXPECT_EQ(val(inst->call<&olib_api::visit>(*h, &kHost)), 7);
  EXPECT_EQ(g_seen, *h);
  EXPECT_EQ(val(inst->call<&olib_api::visit>(*w, &kHost)), 7);
  EXPECT_EQ(g_seen, *w);  // a wild pointer too: only ever a token on the host's side
}

// The table on its own: tokens, one per (value, type), carried over a restart.
TEST(OpaqueTable, TokensAdoptionAndStaleness) {
  struct A;
  struct B;
  constexpr auto ta = ward::handle_type<A>(), tb = ward::handle_type<B>();
  ward::OpaqueTable t;
  EXPECT_EQ(*t.token_for(0, ta), 0u);
  const std::uint64_t x = *t.token_for(0x1000, ta);
  EXPECT_EQ(*t.token_for(0x1000, ta), x);
  const std::uint64_t y = *t.token_for(0x1000, tb);
  EXPECT_NE(x, y);
  std::unordered_set<std::uint64_t> seen{x, y};
  for (std::uint64_t v = 1; v <= 1000; ++v) {
    const std::uint64_t k = *t.token_for(0x2000 + v * 16, ta);
    EXPECT_TRUE(never_an_address(k));
    EXPECT_TRUE(seen.insert(k).second);
  }
  EXPECT_EQ(*t.value_of(x, ta), 0x1000u);
  EXPECT_FALSE(t.value_of(x, tb));

  // A restart: everything is stale, then the replay's fresh token for x's object takes x's place.
  ward::OpaqueTable next;
  next.inherit_stale(t);
  auto stale = next.value_of(x, ta);
  ASSERT_FALSE(stale);
  EXPECT_NE(stale.error().detail.find("since been restarted"), std::string::npos);
  const std::uint64_t fresh = *next.token_for(0x5000, ta);
  next.adopt(fresh, x);
  EXPECT_EQ(*next.value_of(x, ta), 0x5000u);
  EXPECT_FALSE(next.value_of(fresh, ta));               // the replay's own token is gone
  EXPECT_EQ(*next.token_for(0x5000, ta), x);             // and the value maps to the host's token
  EXPECT_FALSE(next.value_of(y, tb));                    // not replayed: still stale
  // A second restart still knows both.
  ward::OpaqueTable third;
  third.inherit_stale(next);
  EXPECT_NE(third.value_of(y, tb).error().detail.find("since been restarted"), std::string::npos);
  EXPECT_NE(third.value_of(x, ta).error().detail.find("since been restarted"), std::string::npos);
  EXPECT_NE(third.value_of(12345, ta).error().detail.find("unknown"), std::string::npos);
}

// Under a Supervisor: tokens produced by replayed calls (a result, an out parameter) keep working
// after the extension is killed and restarted; the others are refused as from an old instance.
TEST(OpaqueSupervised, ReplayedTokensSurviveARestartOthersGoStale) {
  ward::Supervisor sup(ward::RestartPolicy{.max_restarts = 5, .window = 10s});
  auto ext = sup.load<olib_api>(plugin(), "olib_entry");
  ASSERT_TRUE(ext) << ext.error().message();
  auto& e = **ext;
  auto a = e.call<&olib_api::db_create>("a");
  ASSERT_TRUE(a && *a) << (a ? "null" : a.error().message());
  olib_db* b = nullptr;
  ASSERT_EQ(val(e.call<&olib_api::db_open>("b", &b)), 0);
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(val(e.call<&olib_api::db_put>(*a, 5)), 5);
  ASSERT_EQ(val(e.call<&olib_api::db_put>(b, 2)), 2);
  ASSERT_EQ(val(e.call<&olib_api::db_put>(*a, 7)), 12);
  auto scratch = e.call<&olib_api::db_create_scratch>("s");
  ASSERT_TRUE(scratch && *scratch);
  ASSERT_EQ(val(e.call<&olib_api::db_sum>(*scratch)), 0);
  const pid_t before = ward::pid_of(e.domain());

  e.kill();
  // db_sum is idempotent: it recovers, and the replayed calls rebuilt a and b under their tokens.
  EXPECT_EQ(val(e.call<&olib_api::db_sum>(*a)), 12);
  EXPECT_NE(ward::pid_of(e.domain()), before);
  EXPECT_EQ(e.stats().restarts, 1u);
  EXPECT_EQ(val(e.call<&olib_api::db_sum>(b)), 2);
  auto same = e.call<&olib_api::db_same>(*a);
  ASSERT_TRUE(same);
  EXPECT_EQ(*same, *a);  // the new instance's pointer maps to the token the host holds
  auto s = e.call<&olib_api::db_sum>(*scratch);
  ASSERT_FALSE(s);
  expect_misuse(s.error(), "since been restarted");
  EXPECT_TRUE(e.domain().alive());
  // A new scratch database works, and is not the old token (even at the old address).
  auto fresh = e.call<&olib_api::db_create_scratch>("s");
  ASSERT_TRUE(fresh && *fresh);
  EXPECT_NE(*fresh, *scratch);
  EXPECT_EQ(val(e.call<&olib_api::db_sum>(*fresh)), 0);

  // A second restart keeps both the replayed tokens and the staleness of the old scratch one.
  e.kill();
  EXPECT_EQ(val(e.call<&olib_api::db_sum>(*a)), 12);
  auto s2 = e.call<&olib_api::db_sum>(*scratch);
  ASSERT_FALSE(s2);
  expect_misuse(s2.error(), "since been restarted");
}

}  // namespace
