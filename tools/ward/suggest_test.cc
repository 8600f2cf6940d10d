// Suggestions for mistyped commands and options, over a small CLI11 tree shaped like ward's.
#include "suggest.h"

#include <gtest/gtest.h>

namespace ward::cli {
namespace {

TEST(Suggest, EditDistanceCountsSwapsOnce) {
  EXPECT_EQ(edit_distance("bench", "bench"), 0u);
  EXPECT_EQ(edit_distance("bnch", "bench"), 1u);
  EXPECT_EQ(edit_distance("bnech", "bench"), 1u);  // two neighbours swapped
  EXPECT_EQ(edit_distance("", "rio"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(Suggest, NearestPrefersPrefixesThenCloseSpellings) {
  const std::vector<std::string> c = {"demo", "rio", "fuse", "bench"};
  EXPECT_EQ(nearest("be", c), "bench");
  EXPECT_EQ(nearest("fuze", c), "fuse");
  EXPECT_EQ(nearest("--kils", std::vector<std::string>{"--kills", "--files"}), "--kills");
  EXPECT_EQ(nearest("bogus", c), std::nullopt);
  EXPECT_EQ(nearest("x", std::vector<std::string>{"-h"}), std::nullopt);  // one letter is no typo of another
}

struct Tree {
  CLI::App app{"test"};
  Tree() {
    auto* bench = app.add_subcommand("bench", "b");
    auto* xpc = bench->add_subcommand("xpc", "x");
    xpc->add_option("--repetitions", reps, "r");
    xpc->add_flag("--json", json, "j");
    auto* rio = app.add_subcommand("rio", "r");
    rio->add_subcommand("inspect", "i")->add_option("REGION", region, "p");
  }
  std::optional<Unknown> run(std::vector<const char*> argv) {
    argv.insert(argv.begin(), "ward");
    return find_unknown(app, static_cast<int>(argv.size()), argv.data());
  }
  int reps = 0;
  bool json = false;
  std::string region;
};

TEST(Suggest, FindsTheUnknownWordAtItsLevel) {
  Tree t;
  auto u = t.run({"bench", "xcp"});
  ASSERT_TRUE(u);
  EXPECT_EQ(u->command, "ward bench");
  EXPECT_FALSE(u->option);
  EXPECT_EQ(u->meant, "xpc");

  u = t.run({"bench", "xpc", "--repetitions", "3", "--jsno"});
  ASSERT_TRUE(u);
  EXPECT_EQ(u->command, "ward bench xpc");
  EXPECT_TRUE(u->option);
  EXPECT_EQ(u->word, "--jsno");
  EXPECT_EQ(u->meant, "--json");
  EXPECT_EQ(describe(*u), "ward bench xpc: unknown option '--jsno'; did you mean '--json'?\n");

  u = t.run({"bogus"});
  ASSERT_TRUE(u);
  EXPECT_EQ(describe(*u), "ward: unknown command 'bogus'; its commands are: bench, rio\n");
}

TEST(Suggest, ValuesAndPositionalsAreNotUnknown) {
  Tree t;
  EXPECT_FALSE(t.run({"bench", "xpc", "--repetitions", "xcp"}));  // a value, even a bad one
  EXPECT_FALSE(t.run({"bench", "xpc", "--repetitions=3", "--json"}));
  EXPECT_FALSE(t.run({"rio", "inspect", "some-region"}));
  EXPECT_FALSE(t.run({"rio", "--", "--anything"}));
}

}  // namespace
}  // namespace ward::cli
