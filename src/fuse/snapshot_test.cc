// --snapshot of a directory tree (src/fuse/snapshot.h): taken, trampled on as a killed file
// system might leave it (and as a hostile one might, with planted links), put back.
#include "fuse/snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace {

namespace fs = std::filesystem;
using ward::fuse::detail::Snapshot;

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/ward-snapshot-test-XXXXXX";
    ASSERT_NE(::mkdtemp(t), nullptr);
    dir_ = t;
    top_ = dir_ + "/store";
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    for (auto it = fs::recursive_directory_iterator(dir_, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_directory(ec) && !it->is_symlink(ec)) fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  static void put(const std::string& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }
  static void set_mtime(const std::string& p, time_t sec) {
    const timespec t[2] = {{sec, 0}, {sec, 123}};
    ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), t, AT_SYMLINK_NOFOLLOW), 0) << p;
  }
  // Every entry under `top`: kind, mode, size, link count, modification time, content or target.
  static std::map<std::string, std::string> listing(const std::string& top) {
    std::map<std::string, std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(top, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      struct stat st {};
      const std::string p = it->path().string();
      ::lstat(p.c_str(), &st);
      std::ostringstream d;
      d << std::oct << st.st_mode << std::dec << " size " << st.st_size << " nlink " << st.st_nlink << " mtime "
        << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
      if (S_ISLNK(st.st_mode)) d << " -> " << fs::read_symlink(p, ec).string();
      if (S_ISREG(st.st_mode)) {
        std::ifstream f(p, std::ios::binary);
        d << " [" << std::string(std::istreambuf_iterator<char>(f), {}) << "]";
      }
      out[p.substr(top.size())] = d.str();
    }
    return out;
  }
  std::string dir_, top_;
};

TEST_F(SnapshotTest, ATreeComesBackAsItWasWhateverWasDoneToIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root, as ward fuse does (a read-only directory in the tree)";
  fs::create_directories(top_ + "/a/b/c");
  fs::create_directories(top_ + "/ro");
  put(top_ + "/a/one", "first file");
  put(top_ + "/a/b/empty", "");
  put(top_ + "/a/b/c/big", std::string(3 << 20, 'x') + "end");
  put(top_ + "/ro/inside", "under a read-only directory");
  ASSERT_EQ(::chmod((top_ + "/a/one").c_str(), 0640), 0);
  ASSERT_EQ(::link((top_ + "/a/one").c_str(), (top_ + "/a/b/also-one").c_str()), 0);
  ASSERT_EQ(::symlink("one", (top_ + "/a/to-one").c_str()), 0);
  ASSERT_EQ(::symlink("/nowhere/at/all", (top_ + "/dangling").c_str()), 0);
  for (auto p : {"/a/one", "/a/b/empty", "/a/b/c/big", "/a/to-one", "/a/b/c", "/a/b", "/ro/inside"}) set_mtime(top_ + p, 1'600'000'000);
  ASSERT_EQ(::chmod((top_ + "/ro").c_str(), 0555), 0);
  set_mtime(top_ + "/ro", 1'500'000'000);
  const auto before = listing(top_);
  struct stat top_st {};
  ASSERT_EQ(::stat(top_.c_str(), &top_st), 0);

  auto snap = Snapshot::take(top_);
  ASSERT_TRUE(snap) << snap.error().detail;

  // What a killed (or hostile) file system may leave: changed, removed and new files, a
  // directory replaced by a link to a directory outside, a file replaced by a link to a file
  // outside, a deep new chain.
  fs::create_directories(dir_ + "/outside");
  put(dir_ + "/outside/victim", "must survive");
  put(top_ + "/a/one", "rewritten, longer than before");
  fs::remove(top_ + "/a/b/empty");
  put(top_ + "/new", "new");
  fs::remove_all(top_ + "/a/b/c");
  ASSERT_EQ(::symlink((dir_ + "/outside").c_str(), (top_ + "/a/b/c").c_str()), 0);
  fs::remove(top_ + "/dangling");
  ASSERT_EQ(::symlink((dir_ + "/outside/victim").c_str(), (top_ + "/dangling").c_str()), 0);
  std::string deep = top_ + "/deep";
  for (int i = 0; i < 40; ++i) deep += "/d";
  fs::create_directories(deep);
  ASSERT_NE(listing(top_), before);

  auto r = snap->restore();
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_EQ(listing(top_), before);
  struct stat after_st {};
  ASSERT_EQ(::stat(top_.c_str(), &after_st), 0);
  EXPECT_EQ(after_st.st_ino, top_st.st_ino) << "the directory itself is kept (the file system was given its path)";
  std::ifstream v(dir_ + "/outside/victim");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(v), {}), "must survive") << "restore followed a planted link";

  // Twice: the copy is not used up.
  put(top_ + "/a/b/c/big", "short");
  ASSERT_TRUE(snap->restore());
  EXPECT_EQ(listing(top_), before);
}

TEST_F(SnapshotTest, RefusesWhatItCannotCopyAndATopReplacedByALink) {
  fs::create_directories(top_);
  ASSERT_EQ(::mkfifo((top_ + "/fifo").c_str(), 0600), 0);
  auto bad = Snapshot::take(top_);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().detail.find("fifo"), std::string::npos) << bad.error().detail;
  fs::remove(top_ + "/fifo");
  ASSERT_EQ(::mkfifo((dir_ + "/a-fifo").c_str(), 0600), 0);
  auto fifo = Snapshot::take(dir_ + "/a-fifo");  // refused, not blocked in open(2)
  ASSERT_FALSE(fifo);
  EXPECT_NE(fifo.error().detail.find("not a regular file or a directory"), std::string::npos) << fifo.error().detail;

  put(top_ + "/f", "kept");
  auto snap = Snapshot::take(top_);
  ASSERT_TRUE(snap) << snap.error().detail;
  fs::create_directories(dir_ + "/outside");
  put(dir_ + "/outside/victim", "must survive");
  fs::remove_all(top_);
  ASSERT_EQ(::symlink((dir_ + "/outside").c_str(), top_.c_str()), 0);
  auto r = snap->restore();
  EXPECT_FALSE(r) << "restored through a link put where the directory was";
  EXPECT_TRUE(fs::exists(dir_ + "/outside/victim"));
  EXPECT_FALSE(fs::exists(dir_ + "/outside/f"));

  // Removed altogether: made again.
  fs::remove(top_);
  ASSERT_TRUE(snap->restore());
  std::ifstream f(top_ + "/f");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(f), {}), "kept");
}

TEST_F(SnapshotTest, AnAbsentDirectoryThatAppearsIsRefusedNotRemoved) {
  auto snap = Snapshot::take(top_);
  ASSERT_TRUE(snap) << snap.error().detail;
  fs::create_directories(top_);
  put(top_ + "/f", "x");
  EXPECT_FALSE(snap->restore());
  EXPECT_TRUE(fs::exists(top_ + "/f"));
}

}  // namespace
