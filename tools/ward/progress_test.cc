// The progress reporter's modes, driven by an injected clock (no sleeping) into a captured sink.
#include "progress.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ward::cli {
namespace {

using namespace std::chrono_literals;

struct Fake {
  Progress::Clock::time_point t{};
  std::vector<std::string> out;
  Progress::Options options(Progress::Mode mode, std::uint64_t total = 100) {
    Progress::Options o;
    o.label = "run";
    o.total = total;
    o.unit = "kills";
    o.mode = mode;
    o.line_every = 5s;
    o.now = [this] { return t; };
    o.write = [this](std::string_view s) { out.emplace_back(s); };
    o.width = 200;
    return o;
  }
};

TEST(Progress, LinesModeWritesOneLineEveryIntervalWithCountsAndEta) {
  Fake f;
  Progress p(f.options(Progress::Mode::lines));
  for (int k = 1; k <= 100; ++k) {
    f.t += 100ms;  // 100 kills in 10 s: lines at 5 s and 10 s
    p.update(static_cast<std::uint64_t>(k), "ok");
  }
  ASSERT_EQ(f.out.size(), 2u);
  EXPECT_EQ(f.out[0], "run: 50/100 kills  50% ETA 5s, 5s elapsed: ok\n");
  EXPECT_EQ(f.out[1], "run: 100/100 kills 100%, 10s elapsed: ok\n");
  p.finish("done");
  ASSERT_EQ(f.out.size(), 3u);
  EXPECT_EQ(f.out[2], "run: 100/100 kills in 10s: done\n");
  for (const auto& l : f.out) EXPECT_EQ(l.find('\r'), std::string::npos) << "no terminal control off a terminal";
}

TEST(Progress, LinesModeIsSilentBeforeTheFirstInterval) {
  Fake f;
  Progress p(f.options(Progress::Mode::lines));
  f.t += 4999ms;
  p.update(10);
  EXPECT_TRUE(f.out.empty());
  f.t += 1ms;
  p.update(11);
  EXPECT_EQ(f.out.size(), 1u);
}

TEST(Progress, TerminalModeRedrawsInPlaceAtMostEveryRedrawInterval) {
  Fake f;
  Progress p(f.options(Progress::Mode::terminal, 4));
  p.update(1);  // the first draw is immediate
  p.update(2);  // same instant: throttled
  f.t += 100ms;
  p.update(3);
  ASSERT_EQ(f.out.size(), 2u);
  EXPECT_EQ(f.out[0].rfind("\r\x1b[Krun [######..................] 1/4 kills  25%", 0), 0u) << f.out[0];
  EXPECT_NE(f.out[1].find("3/4 kills  75% ETA 0s"), std::string::npos) << f.out[1];
  EXPECT_EQ(f.out[1].find('\n'), std::string::npos);
  p.finish();
  EXPECT_EQ(f.out.back(), "\r\x1b[Krun: 3/4 kills in 0s\n");
}

TEST(Progress, TerminalLinesAreCutToTheWidth) {
  Fake f;
  auto o = f.options(Progress::Mode::terminal);
  o.width = 40;
  Progress p(o);
  p.update(1, std::string(200, 'x'));
  ASSERT_EQ(f.out.size(), 1u);
  EXPECT_EQ(f.out[0].size(), std::string("\r\x1b[K").size() + 39);
}

TEST(Progress, QuietWritesNothing) {
  Fake f;
  Progress p(f.options(Progress::Mode::quiet));
  for (int k = 0; k < 10; ++k) f.t += 10s, p.update(static_cast<std::uint64_t>(k));
  p.finish("x");
  EXPECT_TRUE(f.out.empty());
}

TEST(Progress, AnUnfinishedBarIsEndedByTheDestructor) {
  Fake f;
  {
    Progress p(f.options(Progress::Mode::terminal));
    p.update(1);
  }
  EXPECT_EQ(f.out.back(), "\n");
}

TEST(Progress, UnknownTotalCountsWithoutBarOrEta) {
  Fake f;
  Progress p(f.options(Progress::Mode::lines, 0));
  f.t += 7s;
  p.update(12);
  ASSERT_EQ(f.out.size(), 1u);
  EXPECT_EQ(f.out[0], "run: 12 kills, 7s elapsed\n");
}

TEST(Progress, Durations) {
  EXPECT_EQ(Progress::duration(0s), "0s");
  EXPECT_EQ(Progress::duration(59s), "59s");
  EXPECT_EQ(Progress::duration(187s), "3m07s");
  EXPECT_EQ(Progress::duration(7500s), "2h05m");
}

}  // namespace
}  // namespace ward::cli
