// The region: creation, the persistent layout's checks, ownership, and the write path.
#include "ward/rio/region.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>
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

// A flush split around its unlocked msync (Region::begin_flush .. end_flush): a store after the
// flush took its pages goes on the list again — even into a page the flush is writing, whose
// msync may or may not catch it — and only the stages taken at the start advance.
TEST(Region, AStoreDuringAFlushStaysForTheNextAndOnlyTakenStagesAdvance) {
  TempRegion t;
  auto o = t.opts();
  o.durability = ward::rio::Durability::synced;
  auto r = ward::rio::Region::open(o);
  ASSERT_TRUE(r) << r.error().detail;
  ward::rio::Region& g = **r;
  const std::vector<std::byte> data(g.block_size(), std::byte{7});
  g.write_block(0, 0, 1, 0, data, g.next_seq());
  g.write_block(1, 0, 1, 1, data, g.next_seq());
  ASSERT_FALSE(g.retire(0));  // synced: not reusable yet
  auto first = g.begin_flush();
  ASSERT_TRUE(first.active);
  const std::uint64_t page = (g.header().data_off + 1ull * g.block_size()) / static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  ASSERT_TRUE(std::binary_search(first.pages.begin(), first.pages.end(), page));
  EXPECT_EQ(first.retired, std::vector<std::uint32_t>{0});
  // Meanwhile (the owner's lock released): slot 1's page is stored to again, slot 1 is retired.
  g.write_block(1, 0, 1, 1, data, g.next_seq());
  ASSERT_FALSE(g.retire(1));
  ASSERT_TRUE(g.sync_pages(first));
  g.end_flush(first, true);
  ASSERT_TRUE(g.sync_header());
  EXPECT_TRUE(g.take_reusable().empty());  // slot 0 is marked free now, reusable one flush later
  EXPECT_EQ(g.flushes_pending(), 2);        // slot 1 was retired after the flush took its stages
  auto second = g.begin_flush();
  EXPECT_TRUE(std::binary_search(second.pages.begin(), second.pages.end(), page)) << "the store during the flush was forgotten";
  EXPECT_EQ(second.retired, std::vector<std::uint32_t>{1});
  EXPECT_EQ(second.freeing, std::vector<std::uint32_t>{0});
  ASSERT_TRUE(g.sync_pages(second));
  g.end_flush(second, true);
  EXPECT_EQ(g.take_reusable(), std::vector<std::uint32_t>{0});
  // A failed msync puts everything back.
  g.write_block(2, 0, 1, 2, data, g.next_seq());
  auto third = g.begin_flush();
  const auto taken = third.pages;
  g.end_flush(third, false);
  auto fourth = g.begin_flush();
  EXPECT_EQ(fourth.pages, taken);
  EXPECT_EQ(fourth.freeing, std::vector<std::uint32_t>{1});
  g.end_flush(fourth, false);
}
