// The object tracker: forgery, stale generations, rights, release exactly once, release outside
// the lock. The objects are fakes that count their releases.
#include "ward/core/handle_table.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <set>
#include <thread>

namespace {

struct Buffer {
  int id;
  int* releases;
};
struct Session {};

std::shared_ptr<Buffer> buffer(int id, int* releases) { return std::make_shared<Buffer>(Buffer{id, releases}); }
std::function<void(Buffer&)> count_release() {
  return [](Buffer& b) { ++*b.releases; };
}

TEST(HandleTable, GrantAndLookup) {
  ward::HandleTable t;
  int released = 0;
  auto h = t.grant(buffer(7, &released), ward::rights::read | ward::rights::write, count_release());
  ASSERT_TRUE(h);
  auto b = t.lookup<Buffer>(*h, ward::rights::read);
  ASSERT_TRUE(b);
  EXPECT_EQ((*b)->id, 7);
  EXPECT_EQ(t.live_handles(), 1u);
  EXPECT_EQ(released, 0);
}

// Type identities are distinct objects, not hashes: no two types share one, and cv-qualifiers do
// not make a new type. (Compared at run time: with sanitizers g++ does not fold the addresses of
// distinct objects into constants.)
template <int N>
struct Numbered {};
static_assert(ward::handle_type<const Buffer>() == ward::handle_type<Buffer>());

TEST(HandleTable, ATypeNeverPassesForAnother) {
  EXPECT_NE(ward::handle_type<Buffer>(), ward::handle_type<Session>());
  EXPECT_NE(ward::handle_type<Numbered<1>>(), ward::handle_type<Numbered<2>>());
  ward::HandleTable t(8);
  auto b = t.grant(std::make_shared<Numbered<1>>(), ward::rights::all);
  ASSERT_TRUE(b);
  EXPECT_TRUE(t.check(*b, ward::handle_type<Numbered<1>>(), 0));
  auto wrong = t.check(*b, ward::handle_type<Numbered<2>>(), 0);
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().detail.find("wrong handle type"), std::string::npos) << wrong.error().detail;
  EXPECT_FALSE(t.lookup<Numbered<2>>(*b, 0));
}

TEST(HandleTable, LookupFailsInAFixedOrder) {
  ward::HandleTable t;
  int released = 0;
  auto h = t.grant(buffer(1, &released), ward::rights::read, count_release());
  ASSERT_TRUE(h);
  // Wrong type and missing right together: the type is reported first.
  auto both = t.lookup<Session>(*h, ward::rights::write);
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().kind, ward::Errc::violation);
  EXPECT_EQ(both.error().detail, "wrong handle type");
  auto right = t.lookup<Buffer>(*h, ward::rights::write);
  ASSERT_FALSE(right);
  EXPECT_EQ(right.error().detail, "handle lacks a required right");
  // A bad handle comes before everything else.
  auto badh = t.lookup<Session>(*h ^ 1, ward::rights::write);
  ASSERT_FALSE(badh);
  EXPECT_EQ(badh.error().detail, "bad handle");
}

TEST(HandleTable, ForgedValuesAreRejected) {
  ward::HandleTable t;
  int released = 0;
  std::vector<ward::Handle> issued;
  for (int i = 0; i < 64; ++i) {
    auto h = t.grant(buffer(i, &released), ward::rights::read, count_release());
    ASSERT_TRUE(h);
    issued.push_back(*h);
  }
  // Small integers, neighbours of real values and random guesses: none is accepted.
  std::mt19937_64 rng(42);
  int accepted = 0;
  for (int i = 0; i < 100000; ++i) {
    ward::Handle guess = i < 1000 ? static_cast<ward::Handle>(i)
                         : i < 2000 ? issued[static_cast<std::size_t>(i) % issued.size()] + static_cast<ward::Handle>(i % 7 + 1)
                                    : rng();
    if (t.check(guess, ward::handle_type<Buffer>(), 0)) ++accepted;
  }
  EXPECT_EQ(accepted, 0);
  // Values do not reveal indices: consecutive grants give unrelated-looking values.
  std::set<ward::Handle> distinct(issued.begin(), issued.end());
  EXPECT_EQ(distinct.size(), issued.size());
  EXPECT_GT(issued[1] ^ issued[0], 0xFFFFull);
}

TEST(HandleTable, TablesDoNotAcceptEachOthersHandles) {
  ward::HandleTable a, b;
  int released = 0;
  auto h = a.grant(buffer(1, &released), ward::rights::read);
  ASSERT_TRUE(h);
  ASSERT_TRUE(b.grant(buffer(2, &released), ward::rights::read));
  EXPECT_FALSE(b.check(*h, ward::handle_type<Buffer>(), 0));
}

TEST(HandleTable, StaleGenerationIsABadHandle) {
  ward::HandleTable t;
  int released = 0;
  auto h1 = t.grant(buffer(1, &released), ward::rights::read, count_release());
  ASSERT_TRUE(h1);
  ASSERT_TRUE(t.close(*h1));
  auto h2 = t.grant(buffer(2, &released), ward::rights::read, count_release());  // reuses the slot
  ASSERT_TRUE(h2);
  EXPECT_NE(*h1, *h2);
  auto stale = t.lookup<Buffer>(*h1, 0);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().detail, "bad handle");
  EXPECT_FALSE(t.close(*h1));  // closing twice is an error, not a second release
  EXPECT_EQ(released, 1);
}

TEST(HandleTable, RightsOnlyShrinkOnDuplicate) {
  ward::HandleTable t;
  int released = 0;
  auto h = t.grant(buffer(1, &released), ward::rights::read | ward::rights::duplicate, count_release());
  ASSERT_TRUE(h);
  auto d = t.duplicate(*h, ward::rights::all);  // asks for everything, gets no more than it had
  ASSERT_TRUE(d);
  EXPECT_TRUE(t.check(*d, ward::handle_type<Buffer>(), ward::rights::read));
  EXPECT_FALSE(t.check(*d, ward::handle_type<Buffer>(), ward::rights::write));
  auto ro = t.duplicate(*h, ward::rights::read);  // drops duplicate
  ASSERT_TRUE(ro);
  EXPECT_FALSE(t.duplicate(*ro, ward::rights::read));
  auto no_dup = t.grant(buffer(2, &released), ward::rights::read);
  ASSERT_TRUE(no_dup);
  EXPECT_FALSE(t.duplicate(*no_dup, ward::rights::read));
}

TEST(HandleTable, ReleaseRunsOnceWhenTheLastHandleCloses) {
  ward::HandleTable t;
  int released = 0;
  auto h = t.grant(buffer(1, &released), ward::rights::all, count_release());
  auto d = t.duplicate(*h, ward::rights::read);
  ASSERT_TRUE(h && d);
  ASSERT_TRUE(t.close(*h));
  EXPECT_EQ(released, 0);
  EXPECT_EQ(t.live_objects(), 1u);
  ASSERT_TRUE(t.close(*d));
  EXPECT_EQ(released, 1);
  EXPECT_EQ(t.live_objects(), 0u);
}

TEST(HandleTable, RevokeClosesEveryDuplicate) {
  ward::HandleTable t;
  int released = 0;
  auto h = t.grant(buffer(1, &released), ward::rights::all, count_release());
  auto d1 = t.duplicate(*h, ward::rights::all);
  auto d2 = t.duplicate(*h, ward::rights::read);
  ASSERT_TRUE(h && d1 && d2);
  ASSERT_TRUE(t.revoke(*d1));
  EXPECT_EQ(released, 1);
  EXPECT_EQ(t.live_handles(), 0u);
  EXPECT_FALSE(t.check(*d2, ward::handle_type<Buffer>(), 0));
}

TEST(HandleTable, ReleaseAllReleasesEachObjectOnceAndInvalidatesOldValues) {
  ward::HandleTable t;
  int released = 0;
  std::vector<ward::Handle> hs;
  for (int i = 0; i < 10; ++i) {
    auto h = t.grant(buffer(i, &released), ward::rights::all, count_release());
    ASSERT_TRUE(h);
    hs.push_back(*h);
    ASSERT_TRUE(t.duplicate(*h, ward::rights::read));
  }
  EXPECT_EQ(t.release_all(), 10u);
  EXPECT_EQ(released, 10);
  EXPECT_EQ(t.live_handles(), 0u);
  for (auto h : hs) EXPECT_FALSE(t.check(h, ward::handle_type<Buffer>(), 0));
  // Slots are reused with new generations: the old values stay dead.
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(t.grant(buffer(i, &released), ward::rights::all));
  for (auto h : hs) EXPECT_FALSE(t.check(h, ward::handle_type<Buffer>(), 0));
  EXPECT_EQ(t.release_all(), 10u);
  EXPECT_EQ(released, 10);  // those had no hook
}

TEST(HandleTable, ReleaseHooksRunOutsideTheLock) {
  // A hook that uses the table would deadlock if it ran under the table's lock.
  ward::HandleTable t;
  int released = 0;
  ward::HandleTable* table = &t;
  auto h = t.grant(buffer(1, &released), ward::rights::all, [table](Buffer& b) {
    ++*b.releases;
    (void)table->live_handles();
    (void)table->grant(std::make_shared<Session>(), ward::rights::read);
  });
  ASSERT_TRUE(h);
  EXPECT_EQ(t.release_all(), 1u);
  EXPECT_EQ(released, 1);
  EXPECT_EQ(t.live_handles(), 1u);  // the session the hook granted
}

TEST(HandleTable, QuotaIsALimit) {
  ward::HandleTable t(3);
  int released = 0;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(t.grant(buffer(i, &released), ward::rights::read));
  auto over = t.grant(buffer(9, &released), ward::rights::read);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().kind, ward::Errc::limit);
  EXPECT_EQ(t.live_handles(), 3u);
}

TEST(HandleTable, ConcurrentGrantCloseAndReleaseAllReleaseEachObjectOnce) {
  ward::HandleTable t(1 << 20);
  std::atomic<int> releases{0};
  constexpr int kThreads = 4, kPer = 2000;
  std::atomic<int> granted{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < kThreads; ++i) {
    ts.emplace_back([&] {
      for (int k = 0; k < kPer; ++k) {
        auto h = t.grant(std::make_shared<int>(k), ward::rights::all, [&](int&) { ++releases; });
        if (!h) continue;
        ++granted;
        if (k % 2 == 0) (void)t.close(*h);
        if (k % 500 == 0) t.release_all();
      }
    });
  }
  for (auto& th : ts) th.join();
  t.release_all();
  EXPECT_EQ(releases.load(), granted.load());
  EXPECT_EQ(t.released_total(), t.granted_total());
}

// Finding 9: generations are 24 bits and freed slots are reused LIFO, so one slot cycled 2^24
// times would hand out a closed handle's value again. The first test really cycles one slot 2^24
// times (through `duplicate`, which allocates nothing: about a second); the others give their
// table fewer generations per slot to wear it out quickly (they failed with the full 2^24 too).
constexpr std::uint64_t kGenerations = 1u << 24;

// Cycles one slot of `t` through `cycles` generations (a base handle stays; a duplicate of it is
// made and dropped again and again); the duplicate is dropped by close(), except in the cycles in
// [release_from, release_to), which drop it with release_all() and grant the base again. Returns
// how often the very first duplicate's value was issued again.
std::uint64_t cycle_one_slot(ward::HandleTable& t, std::uint64_t cycles, std::uint64_t release_from,
                             std::uint64_t release_to, ward::Handle& first) {
  int released = 0;
  auto base = t.grant(buffer(1, &released), ward::rights::all);
  EXPECT_TRUE(base);
  first = ward::kInvalidHandle;
  std::uint64_t revived = 0;
  for (std::uint64_t i = 0; i < cycles; ++i) {
    auto d = t.duplicate(*base, ward::rights::read);
    if (!d) {
      ADD_FAILURE() << "cycle " << i << ": " << d.error().detail;
      break;
    }
    if (i == 0) first = *d;
    else if (*d == first) ++revived;
    if (i >= release_from && i < release_to) {
      t.release_all();
      base = t.grant(buffer(1, &released), ward::rights::all);
      EXPECT_TRUE(base);
    } else if (!t.close(*d)) {
      ADD_FAILURE() << "cycle " << i << ": close failed";
      break;
    }
  }
  return revived;
}

TEST(HandleTable, ClosedValuesNeverComeBackWhenASlotRunsOutOfGenerations) {
  ward::HandleTable t(4);
  ward::Handle first;
  EXPECT_EQ(cycle_one_slot(t, kGenerations + 16, 0, 0, first), 0u) << "a closed handle's value was issued again";
  EXPECT_FALSE(t.check(first, ward::handle_type<Buffer>(), 0));
  // The quota is still what it says: the base + 3 more live handles, then limit.
  auto base = t.grant(std::make_shared<Session>(), ward::rights::all);
  ASSERT_TRUE(base);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(t.duplicate(*base, ward::rights::read)) << i;
  auto over = t.duplicate(*base, ward::rights::read);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().kind, ward::Errc::limit);
  EXPECT_NE(over.error().detail.find("quota"), std::string::npos) << over.error().detail;
  EXPECT_EQ(t.live_handles(), 4u);
}

TEST(HandleTable, ReleaseAllRetiresASlotThatRunsOutOfGenerationsToo) {
  // The slot wears out during the cycles that end in release_all (it bumps generations too).
  constexpr std::uint32_t kGens = 1000;
  ward::HandleTable t(4, kGens);
  ward::Handle first;
  EXPECT_EQ(cycle_one_slot(t, 3 * kGens, kGens - 50, kGens + 50, first), 0u)
      << "a released handle's value was issued again";
  EXPECT_FALSE(t.check(first, ward::handle_type<Buffer>(), 0));
}

// A table whose slots have all worn out refuses grants with a clear limit, neither looping nor
// growing without bound: it holds at most twice its quota of slots (see handle_table.h).
TEST(HandleTable, ATableWhoseSlotsAllRetiredFailsGrantsWithLimit) {
  constexpr std::uint64_t kGens = 1000;
  ward::HandleTable t(2, kGens);  // at most 4 slots
  int released = 0;
  auto base = t.grant(buffer(1, &released), ward::rights::all, count_release());
  ASSERT_TRUE(base);
  // Wear out every slot but the base's.
  std::uint64_t cycles = 0;
  ward::Result<ward::Handle> d;
  for (;;) {
    d = t.duplicate(*base, ward::rights::read);
    if (!d) break;
    ASSERT_LT(++cycles, 100 * kGens) << "the slots never wore out";
    ASSERT_TRUE(t.close(*d));
  }
  EXPECT_EQ(d.error().kind, ward::Errc::limit);
  EXPECT_NE(d.error().detail.find("3 of 4 slots retired"), std::string::npos) << d.error().detail;
  EXPECT_EQ(cycles, 3 * kGens);  // slots 1..3, each through all its generations
  // The base still works; once it goes too, nothing can be granted any more, cleanly.
  EXPECT_TRUE(t.check(*base, ward::handle_type<Buffer>(), ward::rights::read));
  EXPECT_EQ(t.live_handles(), 1u);
  ASSERT_TRUE(t.close(*base));
  EXPECT_EQ(released, 1);
  std::uint64_t more = 0;
  for (;;) {
    auto g = t.grant(buffer(2, &released), ward::rights::all);
    if (!g) {
      EXPECT_EQ(g.error().kind, ward::Errc::limit);
      EXPECT_NE(g.error().detail.find("4 of 4 slots retired"), std::string::npos) << g.error().detail;
      break;
    }
    ASSERT_LT(++more, kGens) << "the last slot never wore out";
    ASSERT_TRUE(t.close(*g));
  }
  EXPECT_EQ(t.release_all(), 0u);
  EXPECT_EQ(t.live_handles(), 0u);
  EXPECT_FALSE(t.grant(buffer(3, &released), ward::rights::all));
}

}  // namespace
