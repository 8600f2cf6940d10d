// Inode numbers across restarts (src/fuse/inos.h), without a mount. FuseReal.InodeNumbersStay*
// (restart_test.cc) checks the same through a real libfuse file system.
#include "fuse/inos.h"

#include <set>

#include <gtest/gtest.h>

namespace {

using ward::fuse::detail::Inos;

TEST(FuseInos, TheFirstInstancesNumbersPassThrough) {
  Inos i;
  std::uint64_t a = 0;
  EXPECT_EQ(i.for_node(a, 42), 42u);
  EXPECT_EQ(a, 42u);
  EXPECT_EQ(i.for_node(a, 43), 43u);  // the file system changed it: so does what is shown
  EXPECT_EQ(i.show(7), 7u);
}

TEST(FuseInos, ARenumberingInstanceShowsEachKnownFileItsOldNumberAndNewFilesUnusedOnes) {
  Inos i;
  // First instance: counted in lookup order; 4 and 6 were files since forgotten.
  std::uint64_t a = 0, b = 0, c = 0;
  i.for_node(a, 3), i.for_node(b, 5), i.for_node(c, 7);
  i.show(4), i.show(6);
  // Second instance: the restart finds a, b, c again, counted anew.
  i.begin_instance();
  i.learn(2, a), i.learn(3, b), i.learn(4, c);
  EXPECT_TRUE(i.renumbered());
  EXPECT_EQ(i.for_node(a, 2), 3u);
  EXPECT_EQ(i.for_node(b, 3), 5u);  // 3 is b's now, though it was a's number before
  EXPECT_EQ(i.show(4), 7u);         // a listing names c by its new number
  // A new file gets 5 from the instance: b's shown number. It must get one nobody has.
  std::uint64_t d = 0;
  std::uint64_t shown = i.for_node(d, 5);
  EXPECT_EQ(std::set<std::uint64_t>({3, 5, 7, 4, 6}).count(shown), 0u) << shown;
  EXPECT_EQ(i.for_node(d, 5), shown);  // and keeps it
  EXPECT_EQ(i.show(5), shown);         // in listings too
  // A third instance numbers again; every file keeps what it was shown.
  i.begin_instance();
  i.learn(10, a), i.learn(11, b), i.learn(12, c), i.learn(13, d);
  EXPECT_EQ(i.for_node(a, 10), 3u);
  EXPECT_EQ(i.for_node(d, 13), shown);
  EXPECT_EQ(i.show(12), 7u);
}

TEST(FuseInos, AnInstanceNumberingAsTheLastPassesNewNumbersThrough) {
  Inos i;
  std::uint64_t a = 0, b = 0;
  i.for_node(a, 1000), i.for_node(b, 2000);
  i.begin_instance();
  i.learn(1000, a), i.learn(2000, b);  // a passthrough: its storage's numbers
  EXPECT_FALSE(i.renumbered());
  std::uint64_t c = 0;
  EXPECT_EQ(i.for_node(c, 3000), 3000u);
  EXPECT_EQ(i.show(4000), 4000u);  // what a direct mount would show
}

TEST(FuseInos, ANodeNotFoundByTheRestartKeepsItsNumberWithoutChangingTheRule) {
  Inos i;
  std::uint64_t root = 0, a = 0;
  i.for_node(root, 1), i.for_node(a, 50);
  i.begin_instance();
  i.learn(50, a);
  EXPECT_FALSE(i.renumbered());
  EXPECT_EQ(i.for_node(root, 9), 1u);  // learned late: the root is still 1
  EXPECT_EQ(i.show(9), 1u);
  EXPECT_FALSE(i.renumbered());
}

TEST(FuseInos, UnknownNumbersAndZeroAreNeverMapped) {
  Inos i;
  std::uint64_t a = 0;
  i.for_node(a, 5);
  i.begin_instance();
  i.learn(6, a);
  i.learn(Inos::kUnknown, a);  // ignored
  EXPECT_EQ(i.show(Inos::kUnknown), Inos::kUnknown);  // libfuse's "no number" in a listing
  EXPECT_EQ(i.show(6), 5u);
  std::uint64_t fresh = i.show(7);
  EXPECT_GT(fresh, 5u);
  EXPECT_NE(fresh, Inos::kUnknown);
}

}  // namespace
