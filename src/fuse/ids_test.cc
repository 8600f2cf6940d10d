// ward's node ids (src/fuse/ids.h), without a mount: the bookkeeping a restart relies on.
#include "fuse/ids.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace {

using ward::fuse::detail::Nodes;

TEST(FuseNodes, EntriesGetStableWardIdsAndCountLookups) {
  Nodes n;
  auto a = n.entry(500, Nodes::kRoot, "a", 7, 0100000);
  EXPECT_GE(a, 2u);
  EXPECT_EQ(n.entry(500, Nodes::kRoot, "a", 7, 0100000), a);  // the same node again
  EXPECT_EQ(n.find(a)->kernel_refs, 2u);
  EXPECT_EQ(n.find(a)->fs_refs, 2u);
  EXPECT_EQ(n.to_ward(500), a);
  auto b = n.entry(501, Nodes::kRoot, "b", 1, 040000);
  EXPECT_NE(b, a);
}

TEST(FuseNodes, ForgetsPassOnlyWhatTheInstanceMayDrop) {
  Nodes n;
  auto a = n.entry(500, Nodes::kRoot, "a", 0, 0100000);
  n.entry(500, Nodes::kRoot, "a", 0, 0100000);
  n.entry(500, Nodes::kRoot, "a", 0, 0100000);  // the kernel and the instance hold 3
  auto f = n.forget(a, 1);
  EXPECT_EQ(f.fs, 500u);
  EXPECT_EQ(f.count, 1u);
  // A restart: the new instance counted one lookup (by name) where the kernel holds two.
  n.begin_restart();
  n.rebind(a, 900, 1);
  EXPECT_EQ(n.forget(a, 1).count, 0u);  // the instance keeps its one while the kernel holds one
  auto last = n.forget(a, 1);
  EXPECT_EQ(last.fs, 900u);
  EXPECT_EQ(last.count, 1u);
  EXPECT_EQ(n.find(a), nullptr);  // gone with the kernel's last lookup
  EXPECT_EQ(n.to_ward(900), 0u);
}

TEST(FuseNodes, NamesFollowRenameAndUnlinkAndHardLinks) {
  Nodes n;
  auto d = n.entry(10, Nodes::kRoot, "dir", 0, 040000);
  auto f = n.entry(11, d, "f", 0, 0100000);
  n.renamed(d, "f", Nodes::kRoot, "g");
  EXPECT_EQ(n.find(f)->parent, Nodes::kRoot);
  EXPECT_EQ(n.find(f)->name, "g");
  // A second name (hard link), then the first goes: the node is found by the second.
  EXPECT_EQ(n.entry(11, d, "h", 0, 0100000), f);
  n.unlinked(Nodes::kRoot, "g");
  EXPECT_EQ(n.find(f)->parent, d);
  EXPECT_EQ(n.find(f)->name, "h");
  n.unlinked(d, "h");
  EXPECT_EQ(n.find(f)->parent, 0u);  // no name left: a restart cannot find it (stale)
  // A rename over an existing name takes that name from its node.
  auto x = n.entry(12, d, "x", 0, 0100000);
  auto y = n.entry(13, d, "y", 0, 0100000);
  n.renamed(d, "x", d, "y");
  EXPECT_EQ(n.find(x)->name, "y");
  EXPECT_EQ(n.find(y)->parent, 0u);
}

TEST(FuseNodes, RestartOrdersParentsFirst) {
  Nodes n;
  auto a = n.entry(10, Nodes::kRoot, "a", 0, 040000);
  auto b = n.entry(11, a, "b", 0, 040000);
  auto c = n.entry(12, b, "c", 0, 0100000);
  auto order = n.begin_restart();
  auto pos = [&](std::uint64_t id) { return std::find(order.begin(), order.end(), id) - order.begin(); };
  EXPECT_LT(pos(a), pos(b));
  EXPECT_LT(pos(b), pos(c));
  EXPECT_EQ(n.find(c)->fs, 0u);  // unbound until the new instance finds it
  EXPECT_EQ(n.to_ward(12), 0u);
  n.mark_stale(c);
  EXPECT_TRUE(n.find(c)->stale);
}

}  // namespace
