// Another local user attacks the region (issue 11, item 0): user `nobody` plants a region file,
// a symlink, or the per-user directory where a root program will look, and the root program must
// refuse each with an error naming the path — never use, follow or clobber what it did not create.
// These tests need root (to become `nobody` in a child); without it they skip and say why.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <grp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <thread>
#include <vector>

#include "rio/private_path.h"
#include "ward/rio/cache.h"
#include "ward/rio/region.h"

namespace {

namespace fs = std::filesystem;
constexpr uid_t kNobody = 65534;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs `f` in a child process as user and group `nobody` (no supplementary groups, umask 0, so
// what it creates is as open as it asks for), in directory `dir_fd` if given: it is entered before
// the privileges are dropped, so `f` works there by relative names even where nobody could not
// reach it by path (a parent closed to others, like the root of fresh-check's chroot). True if
// `f` returned true. The wait has a deadline.
bool as_nobody(const std::function<bool()>& f, int dir_fd = -1) {
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    umask(0);
    if (dir_fd >= 0 && fchdir(dir_fd) != 0) _exit(2);
    if (setgroups(0, nullptr) != 0 || setgid(kNobody) != 0 || setuid(kNobody) != 0) _exit(2);
    _exit(f() ? 0 : 1);
  }
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// A shared, world-writable sticky directory like /tmp or /dev/shm (1777), inside a private (0700)
// test directory that `nobody` cannot traverse: the attacker works inside the shared directory
// through a descriptor of it (attack() below), as a local user would who has it as their cwd.
// Removed even when the test fails.
struct SharedDir : ::testing::Test {
  fs::path top, shared;
  int shared_fd = -1;
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: the attacker is a second user (nobody) made with setuid in a child";
    char tmpl[] = "/tmp/ward-attack-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    top = tmpl;
    shared = top / "shared";
    ASSERT_EQ(mkdir(shared.c_str(), 0700), 0);
    ASSERT_EQ(chmod(shared.c_str(), 01777), 0);
    shared_fd = ::open(shared.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(shared_fd, 0);
    // Where there is no uid 65534 to switch to there is no attacker: skip and say so, rather
    // than fail on the environment or pass without attacking.
    if (!attack([] {
          const int fd = ::open("probe", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
          return fd >= 0 && ::close(fd) == 0 && ::unlink("probe") == 0;
        }))
      GTEST_SKIP() << "user nobody (65534) cannot be switched to, or cannot create a file in " << shared
                   << ": no second user to attack with";
  }
  void TearDown() override {
    if (shared_fd >= 0) ::close(shared_fd);
    std::error_code ec;
    if (!top.empty()) fs::remove_all(top, ec);
  }
  // Runs `f` as nobody inside the shared directory: it names files there relatively ("cache.rio").
  bool attack(const std::function<bool()>& f) const { return as_nobody(f, shared_fd); }
  static ward::rio::RegionOptions opts(const fs::path& p) {
    ward::rio::RegionOptions o;
    o.path = p;
    o.size = 1 << 20;
    return o;
  }
};

// nobody creates a valid region at the path root will use, readable and writable by all.
// Before the fix, root opened it and cached its data there (nobody could read and rewrite it).
TEST_F(SharedDir, RegionPlantedByAnotherUserIsRefused) {
  const fs::path p = shared / "cache.rio";
  ASSERT_TRUE(attack([&] {
    auto r = ward::rio::Region::open(opts("cache.rio"));
    if (!r) return false;
    (*r)->set_clean(true);
    return chmod("cache.rio", 0666) == 0;
  }));
  struct stat before {};
  ASSERT_EQ(stat(p.c_str(), &before), 0);
  ASSERT_EQ(before.st_uid, kNobody);
  auto r = ward::rio::Region::open(opts(p));
  ASSERT_FALSE(r) << "root used a region planted by uid 65534";
  EXPECT_TRUE(r.error().kind == ward::Errc::misuse || r.error().kind == ward::Errc::load_failed);
  EXPECT_NE(r.error().detail.find(p.string()), std::string::npos) << r.error().detail;
  EXPECT_NE(r.error().detail.find("65534"), std::string::npos) << r.error().detail;
}

// Also refused when the planted file is private to nobody (0600): it is still not ours.
TEST_F(SharedDir, PrivateRegionOfAnotherUserIsRefused) {
  const fs::path p = shared / "cache.rio";
  ASSERT_TRUE(attack([&] { return static_cast<bool>(ward::rio::Region::open(opts("cache.rio"))); }));
  auto r = ward::rio::Region::open(opts(p));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("65534"), std::string::npos) << r.error().detail;
}

// nobody plants a symlink to a file nobody can read and write; and a symlink to an (empty)
// root file, which creation would have clobbered. Neither link is followed.
TEST_F(SharedDir, PlantedSymlinkIsNotFollowed) {
  const fs::path p = shared / "cache.rio", bait = shared / "bait.rio", victim = top / "victim";
  { std::ofstream(victim) << ""; }  // root's own empty file
  ASSERT_TRUE(attack([&] {
    auto r = ward::rio::Region::open(opts("bait.rio"));
    if (!r) return false;
    return chmod("bait.rio", 0666) == 0 && symlink(bait.c_str(), "cache.rio") == 0;
  }));
  auto r = ward::rio::Region::open(opts(p));
  ASSERT_FALSE(r) << "root followed a symlink planted by uid 65534";
  EXPECT_NE(r.error().detail.find(p.string()), std::string::npos) << r.error().detail;

  const fs::path p2 = shared / "other.rio";
  ASSERT_TRUE(attack([&] { return symlink(victim.c_str(), "other.rio") == 0; }));
  auto r2 = ward::rio::Region::open(opts(p2));
  ASSERT_FALSE(r2) << "root followed a symlink planted by uid 65534";
  EXPECT_EQ(slurp(victim), "") << "the link's target was turned into a region";
  EXPECT_EQ(fs::file_size(victim), 0u);
}

// The same through Cache::open, which is what a program calls.
TEST_F(SharedDir, CacheRefusesAPlantedRegion) {
  const fs::path p = shared / "cache.rio", backing = top / "backing";
  fs::create_directories(backing);
  ASSERT_TRUE(attack([&] {
    auto r = ward::rio::Region::open(opts("cache.rio"));
    return r && chmod("cache.rio", 0666) == 0;
  }));
  ward::rio::CacheOptions o;
  o.backing_dir = backing;
  o.region = opts(p);
  o.writeback_age = std::chrono::milliseconds(0);
  auto c = ward::rio::Cache::open(o);
  ASSERT_FALSE(c) << "root cached its data in a region uid 65534 can read and write";
  EXPECT_NE(c.error().detail.find(p.string()), std::string::npos) << c.error().detail;
}

// The default location: a per-user directory in the shared one. nobody creates it first, as an
// open directory or as a link to one of theirs; root refuses both and names the owner.
TEST_F(SharedDir, PlantedPerUserDirectoryIsRefused) {
  const fs::path backing = top / "backing";
  fs::create_directories(backing);
  const fs::path p = ward::rio::default_region_path(backing, shared);
  ASSERT_EQ(p.parent_path(), shared / ("ward-" + std::to_string(geteuid())));
  const std::string per_user = p.parent_path().filename().string();
  ASSERT_TRUE(attack([&] { return mkdir(per_user.c_str(), 0777) == 0; }));
  auto d = ward::rio::ensure_private_dir(p.parent_path());
  ASSERT_FALSE(d) << "root accepted a directory made by uid 65534";
  EXPECT_NE(d.error().detail.find("65534"), std::string::npos) << d.error().detail;
  auto r = ward::rio::Region::open(opts(p));
  ASSERT_FALSE(r) << "root created its region in a directory uid 65534 owns";
  EXPECT_EQ(fs::exists(p), false);

  fs::remove_all(p.parent_path());
  ASSERT_TRUE(attack([&] { return mkdir("theirs", 0777) == 0 && symlink("theirs", per_user.c_str()) == 0; }));
  d = ward::rio::ensure_private_dir(p.parent_path());
  ASSERT_FALSE(d) << "root followed a link planted by uid 65534";
  EXPECT_NE(d.error().detail.find("symbolic link"), std::string::npos) << d.error().detail;

  // Without an attacker: created 0700, and a region in it works.
  fs::remove(p.parent_path());
  ASSERT_TRUE(ward::rio::ensure_private_dir(p.parent_path())) << "a fresh private directory";
  EXPECT_EQ(fs::status(p.parent_path()).permissions(), fs::perms::owner_all);
  auto ok = ward::rio::Region::open(opts(p));
  ASSERT_TRUE(ok) << ok.error().detail;
  EXPECT_EQ(fs::status(p).permissions(), fs::perms::owner_read | fs::perms::owner_write);
}

// Works as any user: the checks that do not need a second one.
struct PrivateDir : ::testing::Test {
  fs::path dir;
  void SetUp() override {
    auto d = ward::rio::make_private_dir(fs::temp_directory_path(), "ward-private-test");
    ASSERT_TRUE(d) << d.error().detail;
    dir = *d;
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

// Issue 11.4: an existing empty file is not a region and is not turned into one.
TEST_F(PrivateDir, ExistingEmptyFileIsRefusedNotTurnedIntoARegion) {
  const fs::path p = dir / "empty.rio";
  { std::ofstream(p) << ""; }
  fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
  ward::rio::RegionOptions o;
  o.path = p;
  o.size = 1 << 20;
  auto r = ward::rio::Region::open(o);
  ASSERT_FALSE(r) << "an empty file became a region";
  EXPECT_EQ(r.error().kind, ward::Errc::load_failed);
  EXPECT_NE(r.error().detail.find("empty"), std::string::npos) << r.error().detail;
  EXPECT_EQ(fs::file_size(p), 0u);
}

// Our own file, but open to others: refused, and left as it was (ward repairs nothing).
TEST_F(PrivateDir, OwnRegionReadableByOthersIsRefused) {
  ward::rio::RegionOptions o;
  o.path = dir / "r.rio";
  o.size = 1 << 20;
  ASSERT_TRUE(ward::rio::Region::open(o));
  fs::permissions(o.path, fs::perms::others_read, fs::perm_options::add);
  auto r = ward::rio::Region::open(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("0604"), std::string::npos) << r.error().detail;
  // And a hard link to it is not ours to trust either (it may have been made by someone else).
  fs::permissions(o.path, fs::perms::others_read, fs::perm_options::remove);
  fs::create_hard_link(o.path, dir / "link.rio");
  r = ward::rio::Region::open(o);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("hard links"), std::string::npos) << r.error().detail;
}

// Issue 11.2: a real small tmpfs (1 MiB). A region larger than the room left is an error at open
// (Errc::limit), not SIGBUS later; nothing is left behind; one that fits works to its last page.
struct SmallTmpfs : PrivateDir {
  fs::path mnt;
  bool mounted = false;
  void SetUp() override {
    PrivateDir::SetUp();
    if (HasFatalFailure()) return;
    mnt = dir / "mnt";
    ASSERT_EQ(mkdir(mnt.c_str(), 0700), 0);
    if (mount("ward-test", mnt.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0700") != 0)
      GTEST_SKIP() << "cannot mount a tmpfs here (" << std::strerror(errno) << "; needs CAP_SYS_ADMIN)";
    mounted = true;
  }
  void TearDown() override {
    if (mounted && umount2(mnt.c_str(), MNT_DETACH) != 0) ADD_FAILURE() << "umount " << mnt << ": " << std::strerror(errno);
    PrivateDir::TearDown();
  }
};

TEST_F(SmallTmpfs, RegionLargerThanTheFileSystemIsAnErrorNotSigbus) {
  ward::rio::RegionOptions o;
  o.path = mnt / "big.rio";
  o.size = 4 << 20;
  auto r = ward::rio::Region::open(o);
  ASSERT_FALSE(r) << "a 4 MiB region on a 1 MiB tmpfs was created (its stores would SIGBUS)";
  EXPECT_EQ(r.error().kind, ward::Errc::limit);
  EXPECT_NE(r.error().detail.find(std::strerror(ENOSPC)), std::string::npos) << r.error().detail;
  EXPECT_TRUE(fs::is_empty(mnt)) << "a half-built region was left behind";

  o.path = mnt / "fits.rio";
  o.size = 512 << 10;
  o.block_size = 512;
  o.files = 4;
  auto ok = ward::rio::Region::open(o);
  ASSERT_TRUE(ok) << ok.error().detail;
  // Every page is backed: the last block can be written (a hole here would be SIGBUS on a full fs).
  std::vector<std::byte> blk(512, std::byte{7});
  auto& reg = **ok;
  reg.write_block(reg.nblocks() - 1, 0, 0, 0, blk, reg.next_seq());
  EXPECT_TRUE(reg.entry_valid(reg.nblocks() - 1));
}

}  // namespace
