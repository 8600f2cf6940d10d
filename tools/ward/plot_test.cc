// `--plot`: the gnuplot script drawn from a table, and real charts from Debian's gnuplot.
#include "plot.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace ward::cli {
namespace {

namespace fs = std::filesystem;

std::vector<bench::Row> table() {
  std::vector<bench::Row> rows(3);
  rows[0].name = "floor/direct_call";
  rows[0].value = 2;
  rows[1].name = "xpc/call_u64";
  rows[1].value = 6000;
  rows[1].floor = "floor/direct_call";
  rows[1].ratio = 3000;
  rows[2].name = "lib/sum_64k";
  rows[2].value = 30;
  rows[2].floor = "direct/sum_64k";
  rows[2].ratio = 1.5;
  return rows;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// A private directory, removed even when the test fails.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "ward-plot-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

TEST(Plot, ScriptDrawsEachFigureBesideItsFloorWithTheRatio) {
  const std::string s = gnuplot_script(table(), "t", "/x/base");
  EXPECT_NE(s.find("1 6000 2 \"xpc/call_u64\" \"6 us   3000.00x its floor\" \"floor/direct_call: 2 ns\""), std::string::npos) << s;
  EXPECT_NE(s.find("0 30 20 \"lib/sum_64k\" \"30 ns   1.50x its floor\" \"direct/sum_64k: 20 ns\""), std::string::npos) << s;
  EXPECT_EQ(s.find("\"floor/direct_call\" \""), std::string::npos) << "a row without a floor is not drawn";
  EXPECT_NE(s.find("set logscale x"), std::string::npos) << "2 ns beside 6 us needs a log axis";
  EXPECT_NE(s.find("set output \"/x/base.svg\""), std::string::npos);
  EXPECT_NE(s.find("set output \"/x/base.png\""), std::string::npos);
  EXPECT_TRUE(gnuplot_script({table()[0]}, "t", "/x/b").empty());
}

TEST(Plot, NamesCannotBreakOutOfTheirStrings) {
  auto rows = table();
  rows[1].name = "a\"; system(\"touch /tmp/x\") #";
  const std::string s = gnuplot_script(rows, "t", "/x/base");
  EXPECT_NE(s.find("\"a\\\"; system(\\\"touch /tmp/x\\\") #\""), std::string::npos) << s;
}

TEST(Plot, GnuplotWritesSvgAndPng) {
  if (gnuplot_program().empty()) GTEST_SKIP() << "gnuplot is not installed (scripts/setup.sh installs gnuplot-nox)";
  TempDir d;
  auto files = plot_table(table(), (d.path / "charts").string(), "xpc");
  ASSERT_TRUE(files) << files.error().detail;
  ASSERT_EQ(files->size(), 2u);
  const std::string svg = slurp(d.path / "charts/xpc.svg");
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("3000.00x its floor"), std::string::npos);
  EXPECT_NE(svg.find("xpc/call_u64"), std::string::npos);
  EXPECT_EQ(slurp(d.path / "charts/xpc.png").substr(0, 8), "\x89PNG\r\n\x1a\n");
  EXPECT_TRUE(fs::exists(d.path / "charts/xpc.gp"));
}

TEST(Plot, RowsOfSeveralUnitsGetAChartEach) {
  if (gnuplot_program().empty()) GTEST_SKIP() << "gnuplot is not installed (scripts/setup.sh installs gnuplot-nox)";
  TempDir d;
  auto rows = table();
  rows[2].unit = "MB/s";
  auto files = plot_table(rows, d.path.string(), "fuse");
  ASSERT_TRUE(files) << files.error().detail;
  EXPECT_EQ(files->size(), 4u);
  EXPECT_TRUE(fs::exists(d.path / "fuse-ns.svg"));
  EXPECT_TRUE(fs::exists(d.path / "fuse-MB_s.svg"));
}

// A gnuplot stand-in that fails, or never finishes: a clear error, and no child left running.
TEST(Plot, AFailingOrHungGnuplotIsAnError) {
  TempDir d;
  const auto fake = d.path / "fake-gnuplot";
  for (const auto& [body, kind] : {std::pair{"exit 3", Errc::exited}, std::pair{"exec sleep 60", Errc::hung}}) {
    std::ofstream(fake) << "#!/bin/sh\n" << body << "\n";
    fs::permissions(fake, fs::perms::owner_all);
    ::setenv("WARD_GNUPLOT", fake.c_str(), 1);
    auto files = plot_table(table(), d.path.string(), "x", std::chrono::milliseconds(300));
    ::unsetenv("WARD_GNUPLOT");
    ASSERT_FALSE(files);
    EXPECT_EQ(files.error().kind, kind) << files.error().detail;
  }
}

}  // namespace
}  // namespace ward::cli
