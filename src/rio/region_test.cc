// The region: creation, the persistent layout's checks, ownership, and the write path.
#include "ward/rio/region.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "rio/private_path.h"

namespace {

namespace fs = std::filesystem;
namespace L = ward::rio::layout;

// A region path in a fresh private directory on tmpfs (0700: no other user can plant anything).
struct TempRegion {
  fs::path dir = *ward::rio::make_private_dir("/dev/shm", "ward-test");
  fs::path path = dir / "region.rio";
  ~TempRegion() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  // A file ward did not write, private as ward requires, to be refused for its contents.
  void write_raw(const std::string& bytes) const {
    std::ofstream(path) << bytes;
    fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  }
  ward::rio::RegionOptions opts(ward::rio::Protection p = ward::rio::kDefaultProtection) const {
    ward::rio::RegionOptions o;
    o.path = path;
    o.size = 1 << 20;
    o.protection = p;
    return o;
  }
};

// A creator killed between creating its temporary file and renaming it leaves <path>.new-XXXXXX;
// the next creation removes such files of ours that nobody holds, and leaves a held one alone.
TEST(Region, StaleHalfCreatedFilesAreRemovedAtCreation) {
  TempRegion t;
  const fs::path stale = t.dir / "region.rio.new-abc123", held = t.dir / "region.rio.new-xyz789";
  const fs::path other = t.dir / "other.rio.new-abc123";
  for (const auto& p : {stale, held, other}) std::ofstream(p) << "half";
  const int hfd = ::open(held.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(hfd, 0);
  ASSERT_EQ(flock(hfd, LOCK_EX | LOCK_NB), 0);  // a creator still at work
  {
    auto r = ward::rio::Region::open(t.opts());
    ASSERT_TRUE(r) << r.error().detail;
  }
  ::close(hfd);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(held));
  EXPECT_TRUE(fs::exists(other));  // another region's name
}

TEST(Region, CreatesAndReopensWithTheSameGeometry) {
  TempRegion t;
  std::uint32_t nblocks = 0;
  std::uint64_t gen = 0;
  {
    auto r = ward::rio::Region::open(t.opts());
    ASSERT_TRUE(r) << r.error().detail;
    EXPECT_TRUE((*r)->created());
    nblocks = (*r)->nblocks();
    gen = (*r)->generation();
    EXPECT_GT(nblocks, 100u);
    EXPECT_EQ((*r)->block_size(), 4096u);
    (*r)->set_clean(true);
  }
  auto r = ward::rio::Region::open(t.opts());
  ASSERT_TRUE(r) << r.error().detail;
  EXPECT_FALSE((*r)->created());
  EXPECT_TRUE((*r)->was_clean());
  EXPECT_EQ((*r)->nblocks(), nblocks);
  EXPECT_EQ((*r)->generation(), gen + 1);
}

TEST(Region, NotClosedCleanlyIsSeenByTheNextOwner) {
  TempRegion t;
  { ASSERT_TRUE(ward::rio::Region::open(t.opts())); }  // no set_clean(true): a crash
  auto r = ward::rio::Region::open(t.opts());
  ASSERT_TRUE(r);
  EXPECT_FALSE((*r)->was_clean());
}

TEST(Region, OneOwnerAtATime) {
  TempRegion t;
  auto a = ward::rio::Region::open(t.opts());
  ASSERT_TRUE(a);
  auto b = ward::rio::Region::open(t.opts());
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().kind, ward::Errc::misuse);
  EXPECT_NE(b.error().detail.find("in use"), std::string::npos) << b.error().detail;
  EXPECT_NE(b.error().detail.find(std::to_string(getpid())), std::string::npos);
}

TEST(Region, BadInputsAreClearErrors) {
  TempRegion t;
  auto o = t.opts();
  o.size = 64 << 10;
  auto small = ward::rio::Region::open(o);
  ASSERT_FALSE(small);
  EXPECT_NE(small.error().detail.find("too small"), std::string::npos) << small.error().detail;
  fs::remove(t.path);
  o = t.opts();
  o.block_size = 3000;
  auto bs = ward::rio::Region::open(o);
  ASSERT_FALSE(bs);
  EXPECT_NE(bs.error().detail.find("power of two"), std::string::npos);
  fs::remove(t.path);
  t.write_raw(std::string(8192, 'x'));
  auto foreign = ward::rio::Region::open(t.opts());
  ASSERT_FALSE(foreign);
  EXPECT_NE(foreign.error().detail.find("not a ward rio region"), std::string::npos) << foreign.error().detail;
  fs::remove(t.path);
  t.write_raw("tiny");
  auto tiny = ward::rio::Region::open(t.opts());
  ASSERT_FALSE(tiny);
  EXPECT_NE(tiny.error().detail.find("too short"), std::string::npos) << tiny.error().detail;
}

TEST(Region, WrongVersionTruncatedAndDamagedHeadersAreRefused) {
  TempRegion t;
  { ASSERT_TRUE(ward::rio::Region::open(t.opts())); }
  auto patch = [&](off_t off, const void* p, std::size_t n) {
    const int fd = ::open(t.path.c_str(), O_RDWR);
    ASSERT_EQ(pwrite(fd, p, n, off), static_cast<ssize_t>(n));
    ::close(fd);
  };
  const std::uint32_t next = L::kVersion + 1;
  patch(offsetof(L::Header, version), &next, sizeof next);
  auto wrong = ward::rio::Region::open(t.opts());
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().detail.find("version " + std::to_string(next)), std::string::npos) << wrong.error().detail;
  const std::uint32_t v1 = L::kVersion;
  patch(offsetof(L::Header, version), &v1, sizeof v1);
  const std::uint32_t bogus = 12345;
  patch(offsetof(L::Header, nblocks), &bogus, sizeof bogus);
  auto damaged = ward::rio::Region::open(t.opts());
  ASSERT_FALSE(damaged);
  EXPECT_NE(damaged.error().detail.find("damaged"), std::string::npos) << damaged.error().detail;
  fs::remove(t.path);
  { ASSERT_TRUE(ward::rio::Region::open(t.opts())); }
  fs::resize_file(t.path, 512 << 10);
  auto cut = ward::rio::Region::open(t.opts());
  ASSERT_FALSE(cut);
  EXPECT_NE(cut.error().detail.find("truncated"), std::string::npos) << cut.error().detail;
}

TEST(Region, ProtectionKeysAreDetected) {
  TempRegion t;
  auto r = ward::rio::Region::open(t.opts(ward::rio::Protection::pkeys));
  if (ward::rio::pkeys_available()) {
    EXPECT_TRUE(r);
  } else {
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().detail.find("protection keys are not available"), std::string::npos) << r.error().detail;
  }
}

TEST(Region, PublishedBlocksVerifyAndScribbledOnesDoNot) {
  TempRegion t;
  auto r = ward::rio::Region::open(t.opts(ward::rio::Protection::off));
  ASSERT_TRUE(r);
  std::vector<std::byte> data(1000, std::byte{0x42});
  (*r)->set_file(0, 1, "f", 1000);
  (*r)->write_block(5, 0, 1, 0, data, (*r)->next_seq());
  EXPECT_EQ(L::word_state((*r)->entry(5).word.load()), L::kDirty);
  EXPECT_TRUE((*r)->entry_valid(5));
  // Protection is off: a stray store goes through, and the checksum notices.
  const_cast<std::byte*>((*r)->block(5))[10] = std::byte{0};
  EXPECT_FALSE((*r)->entry_valid(5));
}

TEST(Region, SequenceNumbersStayAboveEverythingPublished) {
  TempRegion t;
  std::uint64_t last = 0;
  {
    auto r = ward::rio::Region::open(t.opts(ward::rio::Protection::off));
    ASSERT_TRUE(r);
    std::vector<std::byte> d(10);
    (*r)->set_file(0, 1, "f", 10);
    for (int i = 0; i < 5; ++i) {
      last = (*r)->next_seq();
      (*r)->write_block(static_cast<std::uint32_t>(i), 0, 1, static_cast<std::uint64_t>(i), d, last);
    }
  }  // crash: header's next_seq was never updated
  auto r = ward::rio::Region::open(t.opts(ward::rio::Protection::off));
  ASSERT_TRUE(r);
  EXPECT_GT((*r)->next_seq(), last);
}

}  // namespace
