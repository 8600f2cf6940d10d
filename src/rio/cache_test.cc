// The cache: file semantics in every mode, warm reboot after an in-process "crash", capacity
// write-back, and the failure cases (bad paths, backing file removed, disk full).
#include "ward/rio/cache.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <algorithm>
#include <random>

#include "rio/private_path.h"
#include "rio/writeback.h"

namespace {

namespace fs = std::filesystem;
using ward::rio::Cache;
using ward::rio::CacheOptions;

std::vector<std::byte> bytes(std::string_view s) {
  std::vector<std::byte> v(s.size());
  std::memcpy(v.data(), s.data(), s.size());
  return v;
}
std::string str(std::span<const std::byte> b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct CacheFixture : ::testing::Test {
  fs::path dir, shm, region;
  void SetUp() override {
    const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    // Private directories (0700, created exclusively), so no other user can plant anything.
    auto d = ward::rio::make_private_dir(fs::temp_directory_path(), "ward-cache-" + name);
    auto s = ward::rio::make_private_dir("/dev/shm", "ward-cache-" + name);
    ASSERT_TRUE(d && s);
    dir = *d;
    shm = *s;
    region = shm / "region.rio";
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
    if (!shm.empty()) fs::remove_all(shm, ec);
  }
  CacheOptions opts(ward::rio::Mode mode = ward::rio::Mode::rio, std::uint64_t size = 2 << 20) {
    CacheOptions o;
    o.backing_dir = dir;
    o.region.path = region;
    o.region.size = size;
    o.mode = mode;
    o.writeback_age = std::chrono::milliseconds(0);  // tests decide when write-back happens
    return o;
  }
};

TEST_F(CacheFixture, WriteReadAcrossBlocksWithHolesAndPartialBlocks) {
  auto c = Cache::open(opts());
  ASSERT_TRUE(c) << c.error().detail;
  auto fd = (*c)->open_file("a/b.txt");
  ASSERT_TRUE(fd) << fd.error().detail;
  std::string big(10000, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  ASSERT_TRUE((*c)->write(*fd, bytes(big), 100));
  ASSERT_TRUE((*c)->write(*fd, bytes("HELLO"), 4094));  // straddles a block boundary
  std::vector<std::byte> out(10100);
  auto n = (*c)->read(*fd, out, 0);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 10100u);
  std::string expect = std::string(100, '\0') + big;
  expect.replace(4094, 5, "HELLO");
  EXPECT_EQ(str(out), expect);
  // Past the end: short read.
  auto tail = (*c)->read(*fd, out, 10050);
  ASSERT_TRUE(tail);
  EXPECT_EQ(*tail, 50u);
  // A sparse write far away: the hole reads as zeros.
  ASSERT_TRUE((*c)->write(*fd, bytes("Z"), 100000));
  auto sz = (*c)->size(*fd);
  ASSERT_TRUE(sz);
  EXPECT_EQ(*sz, 100001u);
  std::vector<std::byte> hole(16);
  ASSERT_TRUE((*c)->read(*fd, hole, 50000));
  EXPECT_EQ(str(hole), std::string(16, '\0'));
}

TEST_F(CacheFixture, FsyncWritesNothingToDiskInRioMode) {
  auto c = Cache::open(opts());
  ASSERT_TRUE(c);
  auto fd = (*c)->open_file("f");
  ASSERT_TRUE(fd);
  ASSERT_TRUE((*c)->write(*fd, bytes("durable in the region"), 0));
  ASSERT_TRUE((*c)->fsync(*fd));
  // The backing file has not been touched: the data is safe in the region, not on disk.
  EXPECT_EQ(fs::file_size(dir / "f"), 0u);
  auto st = (*c)->stats();
  EXPECT_EQ(st.blocks_dirty, 1u);
  ASSERT_TRUE((*c)->flush());
  EXPECT_EQ(slurp(dir / "f"), "durable in the region");
  EXPECT_EQ((*c)->stats().blocks_dirty, 0u);
}

TEST_F(CacheFixture, ReadsThroughAndPatchesExistingFiles) {
  {
    std::ofstream f(dir / "old.txt");
    f << std::string(5000, 'o');
  }
  auto c = Cache::open(opts());
  ASSERT_TRUE(c);
  auto fd = (*c)->open_file("old.txt", 0);
  ASSERT_TRUE(fd) << fd.error().detail;
  ASSERT_TRUE((*c)->write(*fd, bytes("NEW"), 4095));
  std::vector<std::byte> out(5000);
  ASSERT_TRUE((*c)->read(*fd, out, 0));
  std::string expect(5000, 'o');
  expect.replace(4095, 3, "NEW");
  EXPECT_EQ(str(out), expect);
  c->reset();  // clean close writes back
  EXPECT_EQ(slurp(dir / "old.txt"), expect);
}

TEST_F(CacheFixture, TruncateShrinksAndExtends) {
  auto c = Cache::open(opts());
  ASSERT_TRUE(c);
  auto fd = (*c)->open_file("t");
  ASSERT_TRUE(fd);
  ASSERT_TRUE((*c)->write(*fd, bytes(std::string(9000, 'q')), 0));
  ASSERT_TRUE((*c)->truncate(*fd, 5000));
  ASSERT_TRUE((*c)->truncate(*fd, 6000));  // the regrown part reads as zeros
  std::vector<std::byte> out(6000);
  ASSERT_TRUE((*c)->read(*fd, out, 0));
  EXPECT_EQ(str(out), std::string(5000, 'q') + std::string(1000, '\0'));
  c->reset();
  EXPECT_EQ(slurp(dir / "t"), std::string(5000, 'q') + std::string(1000, '\0'));
}

TEST_F(CacheFixture, WarmRebootWritesBackWhatACrashedOwnerLeft) {
  {
    auto c = Cache::open(opts());
    ASSERT_TRUE(c);
    auto fd = (*c)->open_file("x/y");
    ASSERT_TRUE(fd);
    ASSERT_TRUE((*c)->write(*fd, bytes("acknowledged before the crash"), 0));
    ASSERT_TRUE((*c)->write(*fd, bytes("CRASH"), 0));  // a newer version of the same block
    (*c)->abandon();  // the owner dies: nothing written back, region not clean
  }
  EXPECT_EQ(fs::file_size(dir / "x/y"), 0u);
  ward::rio::RecoveryReport rep;
  auto c = Cache::open(opts(), &rep);
  ASSERT_TRUE(c) << c.error().detail;
  EXPECT_TRUE(rep.needed);
  EXPECT_EQ(rep.written_back, 1u);
  EXPECT_FALSE(rep.lost());
  EXPECT_EQ(slurp(dir / "x/y"), "CRASHwledged before the crash");
}

// A region that survives program crashes only: capacity write-back goes to the page cache without
// fdatasync (which survives the same), but flush and close still reach the disk for every file
// written back that way, also one with nothing dirty left by then.
TEST_F(CacheFixture, WriteBackSyncsOnlyWhereTheRegionPromisesTheDisk) {
  std::vector<std::string> synced;
  ward::rio::detail::on_data_sync = [&](const std::string& p) { synced.push_back(p); };
  struct Reset {
    ~Reset() { ward::rio::detail::on_data_sync = nullptr; }
  } reset;
  auto c = Cache::open(opts(ward::rio::Mode::rio, 1 << 20));  // ~200 blocks
  ASSERT_TRUE(c);
  std::string block(4096, 'a');
  for (const char* name : {"first", "second"}) {  // each 3x the cache: "first" ends all clean
    auto fd = (*c)->open_file(name);
    ASSERT_TRUE(fd);
    for (std::uint64_t b = 0; b < 600; ++b) ASSERT_TRUE((*c)->write(*fd, bytes(block), b * 4096)) << name << b;
  }
  EXPECT_GT((*c)->stats().written_back, 0u);
  EXPECT_TRUE(synced.empty()) << "capacity write-back synced " << synced.front();
  ASSERT_TRUE((*c)->flush());
  std::sort(synced.begin(), synced.end());
  EXPECT_EQ(synced, (std::vector<std::string>{"first", "second"}));
}

TEST_F(CacheFixture, CapacityWriteBackKeepsEverythingReadable) {
  auto c = Cache::open(opts(ward::rio::Mode::rio, 1 << 20));  // ~200 blocks
  ASSERT_TRUE(c);
  auto fd = (*c)->open_file("big");
  ASSERT_TRUE(fd);
  std::mt19937 rng(7);
  std::string model(3 << 20, '\0');
  for (int i = 0; i < 400; ++i) {
    const std::size_t off = rng() % (model.size() - 9000);
    std::string chunk(1 + rng() % 9000, static_cast<char>('A' + i % 26));
    model.replace(off, chunk.size(), chunk);
    ASSERT_TRUE((*c)->write(*fd, bytes(chunk), off)) << i;
  }
  EXPECT_GT((*c)->stats().evicted, 0u);
  EXPECT_GT((*c)->stats().written_back, 0u);
  const auto size = *(*c)->size(*fd);
  std::vector<std::byte> out(size);
  ASSERT_TRUE((*c)->read(*fd, out, 0));
  EXPECT_EQ(str(out), model.substr(0, size));
}

TEST_F(CacheFixture, WriteThroughAndUnsafeModesGoToTheBackingFile) {
  for (auto mode : {ward::rio::Mode::write_through, ward::rio::Mode::unsafe_write_back}) {
    auto c = Cache::open(opts(mode));
    ASSERT_TRUE(c);
    EXPECT_EQ((*c)->region(), nullptr);
    auto fd = (*c)->open_file("m", ward::rio::kCreate | ward::rio::kTruncate);
    ASSERT_TRUE(fd);
    ASSERT_TRUE((*c)->write(*fd, bytes("straight through"), 0));
    EXPECT_EQ(slurp(dir / "m"), "straight through");
    ASSERT_TRUE((*c)->fsync(*fd));
  }
}

TEST_F(CacheFixture, UnlinkRemovesTheFileAndItsBlocks) {
  auto c = Cache::open(opts());
  ASSERT_TRUE(c);
  auto fd = (*c)->open_file("gone");
  ASSERT_TRUE(fd);
  ASSERT_TRUE((*c)->write(*fd, bytes(std::string(10000, 'g')), 0));
  const auto dirty = (*c)->stats().blocks_dirty;
  EXPECT_EQ(dirty, 3u);
  ASSERT_TRUE((*c)->unlink("gone"));
  EXPECT_FALSE(fs::exists(dir / "gone"));
  EXPECT_EQ((*c)->stats().blocks_dirty, 0u);
  EXPECT_FALSE((*c)->write(*fd, bytes("x"), 0));  // its descriptor is gone too
}

TEST_F(CacheFixture, BadInputsAreClearErrors) {
  CacheOptions o = opts();
  o.backing_dir = dir / "missing";
  auto none = Cache::open(o);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().detail.find("does not exist"), std::string::npos);
  auto c = Cache::open(opts());
  ASSERT_TRUE(c);
  for (const char* p : {"../escape", "/etc/passwd", "a//b", "", "a/./b"}) {
    auto fd = (*c)->open_file(p);
    ASSERT_FALSE(fd) << p;
    EXPECT_EQ(fd.error().kind, ward::Errc::misuse);
  }
  EXPECT_FALSE((*c)->open_file("nope", 0));  // no kCreate
  EXPECT_FALSE((*c)->write(999, bytes("x"), 0));
  EXPECT_FALSE((*c)->close(999));
}

TEST_F(CacheFixture, RemovedBackingFileKeepsDirtyDataInTheRegion) {
  {
    auto c = Cache::open(opts());
    ASSERT_TRUE(c);
    auto fd = (*c)->open_file("victim");
    ASSERT_TRUE(fd);
    ASSERT_TRUE((*c)->write(*fd, bytes("precious"), 0));
    fs::remove(dir / "victim");  // someone removes it under the cache
    auto f = (*c)->flush();
    ASSERT_FALSE(f);
    EXPECT_NE(f.error().detail.find("removed"), std::string::npos) << f.error().detail;
    EXPECT_EQ((*c)->stats().blocks_dirty, 1u);  // still here
  }  // the close cannot write it back either: the region stays "not clean"
  ward::rio::RecoveryReport rep;
  {
    auto c = Cache::open(opts(), &rep);
    ASSERT_TRUE(c);
    ASSERT_EQ(rep.unwritable.size(), 1u);
    EXPECT_NE(rep.unwritable[0].find("victim"), std::string::npos);
    EXPECT_FALSE(rep.lost());
    (*c)->abandon();
  }
  // The file comes back (restored by its owner): the next recovery delivers the data.
  { std::ofstream touch(dir / "victim"); }
  auto c = Cache::open(opts(), &rep);
  ASSERT_TRUE(c);
  EXPECT_EQ(rep.written_back, 1u);
  EXPECT_EQ(slurp(dir / "victim"), "precious");
}

TEST_F(CacheFixture, DiskFullDuringWriteBackLosesNothing) {
  const fs::path small = dir / "small";
  fs::create_directories(small);
  if (mount("tmpfs", small.c_str(), "tmpfs", 0, "size=64k") != 0) GTEST_SKIP() << "cannot mount a small tmpfs here (needs root)";
  struct Unmount {
    fs::path p;
    ~Unmount() { umount2(p.c_str(), MNT_DETACH); }
  } unmount{small};
  CacheOptions o = opts();
  o.backing_dir = small;
  auto c = Cache::open(o);
  ASSERT_TRUE(c);
  auto fd = (*c)->open_file("full");
  ASSERT_TRUE(fd);
  const std::string data(256 << 10, 'F');  // four times what the file system holds
  ASSERT_TRUE((*c)->write(*fd, bytes(data), 0));  // safe in the region: acknowledged
  auto f = (*c)->flush();
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().detail.find("No space left"), std::string::npos) << f.error().detail;
  EXPECT_GT((*c)->stats().blocks_dirty, 0u);
  std::vector<std::byte> out(data.size());
  ASSERT_TRUE((*c)->read(*fd, out, 0));
  EXPECT_EQ(str(out), data);  // still readable, from the region
  (*c)->abandon();
  // After the disk gets room (here: a bigger file system in its place), recovery delivers it.
  umount2(small.c_str(), MNT_DETACH);
  ASSERT_EQ(mount("tmpfs", small.c_str(), "tmpfs", 0, "size=1m"), 0);
  { std::ofstream touch(small / "full"); }
  ward::rio::RecoveryReport rep;
  auto again = Cache::open(o, &rep);
  ASSERT_TRUE(again) << again.error().detail;
  EXPECT_FALSE(rep.lost());
  EXPECT_TRUE(rep.unwritable.empty());
  EXPECT_EQ(slurp(small / "full"), data);
  again->reset();
}

}  // namespace

namespace {

TEST_F(CacheFixture, InspectShowsACrashedRegionWithoutTakingIt) {
  {
    auto c = Cache::open(opts(ward::rio::Mode::rio));
    ASSERT_TRUE(c);
    auto fd = (*c)->open_file("seen/by/inspect");
    ASSERT_TRUE(fd);
    ASSERT_TRUE((*c)->write(*fd, bytes(std::string(9000, 'i')), 0));
    (*c)->abandon();
  }
  auto in = ward::rio::inspect(region);
  ASSERT_TRUE(in) << in.error().detail;
  EXPECT_FALSE(in->clean);
  EXPECT_FALSE(in->in_use);
  EXPECT_EQ(in->dirty, 3u);
  EXPECT_TRUE(in->corrupt.empty());
  EXPECT_EQ(in->backing_dir, fs::absolute(dir).lexically_normal().string());
  ASSERT_EQ(in->files.size(), 1u);
  EXPECT_EQ(in->files[0].path, "seen/by/inspect");
  EXPECT_EQ(in->files[0].dirty, 3u);
  // Inspecting took nothing: the cache can still open (and recover) it.
  ward::rio::RecoveryReport rep;
  auto c = Cache::open(opts(), &rep);
  ASSERT_TRUE(c);
  EXPECT_EQ(rep.written_back, 3u);
}

TEST_F(CacheFixture, InspectAndRecoveryReportCorruptBlocksAndNeverWriteThemBack) {
  auto o = opts();
  o.region.protection = ward::rio::Protection::off;
  {
    auto c = Cache::open(o);
    ASSERT_TRUE(c);
    auto fd = (*c)->open_file("v");
    ASSERT_TRUE(fd);
    ASSERT_TRUE((*c)->write(*fd, bytes(std::string(4096, 'g') + std::string(4096, 'h')), 0));
    // A wild store into the second block's data (protection off lets it through).
    auto* r = (*c)->region();
    for (std::uint32_t s = 0; s < r->nblocks(); ++s)
      if (ward::rio::layout::word_state(r->entry(s).word.load()) == ward::rio::layout::kDirty && r->entry(s).block == 1)
        const_cast<std::byte*>(r->block(s))[7] = std::byte{'X'};
    (*c)->abandon();
  }
  auto in = ward::rio::inspect(region);
  ASSERT_TRUE(in);
  ASSERT_EQ(in->corrupt.size(), 1u);
  EXPECT_EQ(in->corrupt[0].block, 1u);
  ward::rio::RecoveryReport rep;
  auto c = Cache::open(o, &rep);
  ASSERT_TRUE(c);
  EXPECT_TRUE(rep.lost());
  ASSERT_EQ(rep.corrupt.size(), 1u);
  EXPECT_EQ(rep.corrupt[0].file, "v");
  EXPECT_EQ(rep.written_back, 1u);  // the good block only
  EXPECT_EQ(slurp(dir / "v").substr(0, 4096), std::string(4096, 'g'));
  EXPECT_EQ(slurp(dir / "v").find('X'), std::string::npos);  // the scribble never reached the file
}

}  // namespace

namespace {

// A region in a regular file with explicit flushes (the mode that also survives power loss
// for what was fsynced): fsync costs an msync here, and a crashed owner's data comes back.
TEST_F(CacheFixture, RegionInARegularFileWithFlushes) {
  auto o = opts();
  o.region.path = dir / "region-on-disk.rio";
  o.region.durability = ward::rio::Durability::synced;
  {
    auto c = Cache::open(o);
    ASSERT_TRUE(c) << c.error().detail;
    EXPECT_EQ((*c)->region()->durability(), ward::rio::Durability::synced);
    auto fd = (*c)->open_file("p");
    ASSERT_TRUE(fd);
    ASSERT_TRUE((*c)->write(*fd, bytes("flushed to the region file"), 0));
    ASSERT_TRUE((*c)->fsync(*fd));
    (*c)->abandon();
  }
  ward::rio::RecoveryReport rep;
  auto c = Cache::open(o, &rep);
  ASSERT_TRUE(c);
  EXPECT_EQ(rep.written_back, 1u);
  EXPECT_EQ(slurp(dir / "p"), "flushed to the region file");
}

}  // namespace

// Write-back without the cache lock (docs/rio.md, "Write-back and locking"): the lock is free
// while write-back does its I/O, a block written meanwhile stays dirty and reaches the file
// later, a writer with no slot waits for write-back (with a deadline) instead of doing I/O, and
// an unwritable backing file gives that writer an error rather than a hang.
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

namespace {

struct RioStalls : CacheFixture {
  // A hook installed in a test seam (after_writeback_io unless named) for one test, and removed
  // even when the test fails.
  struct Hook {
    std::function<void()>& seam;
    explicit Hook(std::function<void()> f, std::function<void()>& at = ward::rio::detail::after_writeback_io) : seam(at) {
      seam = std::move(f);
    }
    ~Hook() { seam = nullptr; }
  };
};

TEST_F(RioStalls, TheLockIsFreeWhileWriteBackDoesItsIO) {
  auto c = Cache::open(opts());
  ASSERT_TRUE(c);
  auto fd = (*c)->open_file("f");
  ASSERT_TRUE(fd);
  ASSERT_TRUE((*c)->write(*fd, bytes(std::string(3 * 4096, 'a')), 0));
  bool done_inside = false;
  std::future<bool> other;  // outlives the hook: if the lock were held, it finishes after flush
  Hook hook([&] {
    // Another thread uses the cache while this one is between its fdatasync and "clean".
    other = std::async(std::launch::async, [&] {
      std::vector<std::byte> out(10);
      return (*c)->write(*fd, bytes("other"), 5 * 4096).has_value() && (*c)->read(*fd, out, 0).has_value();
    });
    if (other.wait_for(std::chrono::seconds(20)) == std::future_status::ready) done_inside = other.get();
  });
  ASSERT_TRUE((*c)->flush());
  EXPECT_TRUE(done_inside);
}

TEST_F(RioStalls, ABlockWrittenDuringWriteBackStaysDirtyAndReachesTheFileLater) {
  {
    auto c = Cache::open(opts());
    ASSERT_TRUE(c);
    auto fd = (*c)->open_file("race");
    ASSERT_TRUE(fd);
    ASSERT_TRUE((*c)->write(*fd, bytes(std::string(4096, 'o')), 0));
    int calls = 0;
    Hook hook([&] {
      if (calls++ == 0) {
        ASSERT_TRUE((*c)->write(*fd, bytes(std::string(4096, 'n')), 0));
      }
    });
    ASSERT_TRUE((*c)->flush());
    EXPECT_EQ(slurp(dir / "race"), std::string(4096, 'o'));  // what the round wrote
    EXPECT_EQ((*c)->stats().blocks_dirty, 1u);                // the newer version was not marked clean
    (*c)->abandon();                                          // a crash: recovery must deliver it
  }
  ward::rio::RecoveryReport rep;
  auto c = Cache::open(opts(), &rep);
  ASSERT_TRUE(c);
  EXPECT_EQ(rep.written_back, 1u);
  EXPECT_EQ(slurp(dir / "race"), std::string(4096, 'n'));
}

// A round picks dirty blocks over several holds of the cache lock, and a block rewritten between
// two holds is picked twice, once per version. Only the newest may reach the file: the round
// writes a file's blocks in block order, and if the older version went last the file kept it
// while the newer one was marked clean — lost once it left the cache (found by
// ManyThreadsWriteReadTruncateAndFlush: a read-through after an eviction returned older bytes).
// Every block here is rewritten just after the flush picked it.
TEST_F(RioStalls, ABlockPickedTwiceInOneRoundReachesTheFileAsItsNewestVersion) {
  constexpr int kBlocks = 48;
  auto c = Cache::open(opts());
  ASSERT_TRUE(c);
  auto fd = (*c)->open_file("twice");
  ASSERT_TRUE(fd);
  ASSERT_TRUE((*c)->write(*fd, bytes(std::string(kBlocks * 4096, 'a')), 0));
  int picks = 0;
  bool rewrites_ok = true;
  Hook hook(
      [&] {
        // After the k-th pick, block k-1 is rewritten (another thread, as in real use).
        if (const int b = picks++; b < kBlocks)
          rewrites_ok &= std::async(std::launch::async, [&] {
                           return (*c)->write(*fd, bytes(std::string(4096, 'b')), static_cast<std::uint64_t>(b) * 4096).has_value();
                         }).get();
      },
      ward::rio::detail::between_picks);
  ASSERT_TRUE((*c)->flush());
  ASSERT_TRUE(rewrites_ok);
  ASSERT_GE(picks, kBlocks);
  const std::string file = slurp(dir / "twice");
  ASSERT_EQ(file.size(), kBlocks * 4096u);
  for (int b = 0; b < kBlocks; ++b)
    EXPECT_EQ(file.substr(static_cast<std::size_t>(b) * 4096, 4096), std::string(4096, 'b')) << "block " << b;
  EXPECT_EQ((*c)->stats().blocks_dirty, 0u);  // each newest version was written and marked clean
}

TEST_F(RioStalls, AWriterWithNoSlotWaitsForWriteBackUntilItsDeadline) {
  auto o = opts(ward::rio::Mode::rio, 1 << 20);
  o.writeback_wait = std::chrono::milliseconds(300);
  auto c = Cache::open(o);
  ASSERT_TRUE(c);
  auto fd = (*c)->open_file("w");
  ASSERT_TRUE(fd);
  // The first write-back round stops after its I/O until the test lets it go (bounded wait).
  std::mutex mu;
  std::condition_variable cv;
  bool release = false, entered = false;
  Hook hook([&] {
    std::unique_lock<std::mutex> l(mu);
    if (entered) return;
    entered = true;
    cv.notify_all();
    cv.wait_for(l, std::chrono::seconds(30), [&] { return release; });
  });
  std::string model;
  ward::Result<std::size_t> r = 0;
  const std::uint32_t blocks = (*c)->stats().blocks_total;
  for (std::uint32_t i = 0; i < 2 * blocks && r; ++i) {
    const std::string chunk(4096, static_cast<char>('A' + i % 26));
    r = (*c)->write(*fd, bytes(chunk), model.size());
    if (r) model += chunk;
  }
  ASSERT_FALSE(r) << "the cache never filled";
  EXPECT_EQ(r.error().kind, ward::Errc::limit);
  EXPECT_NE(r.error().detail.find("timed out"), std::string::npos) << r.error().detail;
  EXPECT_GT((*c)->stats().slot_waits, 0u);
  {
    std::unique_lock<std::mutex> l(mu);
    EXPECT_TRUE(entered);  // the writer waited for a round, it did not write back itself
    release = true;
    cv.notify_all();
  }
  // Once write-back gets on, the same write succeeds, and nothing acknowledged was lost.
  const std::string last(4096, 'z');
  ASSERT_TRUE((*c)->write(*fd, bytes(last), model.size()));
  model += last;
  std::vector<std::byte> out(model.size());
  ASSERT_TRUE((*c)->read(*fd, out, 0));
  EXPECT_EQ(str(out), model);
  c->reset();
  EXPECT_EQ(slurp(dir / "w"), model);
}

TEST_F(RioStalls, AnUnwritableBackingFileGivesTheWriterAnErrorNotAHang) {
  auto o = opts(ward::rio::Mode::rio, 1 << 20);
  o.writeback_wait = std::chrono::seconds(60);  // an error must come from the failed write-back
  auto c = Cache::open(o);
  ASSERT_TRUE(c);
  auto fd = (*c)->open_file("doomed");
  ASSERT_TRUE(fd);
  ASSERT_TRUE((*c)->write(*fd, bytes("first"), 0));
  fs::remove(dir / "doomed");  // write-back of this file now fails
  std::string model = "first";
  ward::Result<std::size_t> r = 0;
  const std::uint32_t blocks = (*c)->stats().blocks_total;
  for (std::uint32_t i = 0; i < 2 * blocks && r; ++i) {
    const std::string chunk(4096, static_cast<char>('a' + i % 26));
    r = (*c)->write(*fd, bytes(chunk), 4096 * (i + 1));
    if (!r) break;
    model.resize(4096 * (i + 1), '\0');
    model += chunk;
  }
  ASSERT_FALSE(r) << "the cache never filled";
  EXPECT_EQ(r.error().kind, ward::Errc::limit);
  EXPECT_NE(r.error().detail.find("removed"), std::string::npos) << r.error().detail;
  std::vector<std::byte> out(model.size());
  ASSERT_TRUE((*c)->read(*fd, out, 0));
  EXPECT_EQ(str(out), model);  // every acknowledged byte is still in the region
  (*c)->abandon();
}

// Read-through (a read of a block the cache does not hold, or a partial write to one) preads the
// backing file without the cache lock. A Stall holds the first read-through just after its pread
// (the bytes read, the lock not yet taken back) until the test releases it (or 30 s pass, so a broken cache fails the test instead of hanging).
struct Stall {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, released = false, over = false;
  void inside() {
    std::unique_lock<std::mutex> l(mu);
    if (entered) return;  // only the first read-through stalls
    entered = true;
    cv.notify_all();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    cv.wait_until(l, until, [&] { return released; });
    over = true;  // released or timed out: the pread goes on
  }
  bool wait_entered() {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::seconds(30), [&] { return entered; });
  }
  void release() {
    std::lock_guard<std::mutex> l(mu);
    released = true;
    cv.notify_all();
  }
  // True while the pread has not gone on: what the test did meanwhile did not wait for it.
  bool still_stalled() {
    std::lock_guard<std::mutex> l(mu);
    return !over;
  }
};
// A cache over a backing file "cold" holding `contents`, which the cache has not read yet, and
// its descriptor (null and -1 if anything failed).
std::pair<std::unique_ptr<Cache>, int> open_cold(CacheFixture& fx, const std::string& contents) {
  { std::ofstream(fx.dir / "cold") << contents; }
  auto c = Cache::open(fx.opts());
  if (!c) return {nullptr, -1};
  auto fd = (*c)->open_file("cold", 0);
  if (!fd) return {nullptr, -1};
  return {std::move(*c), *fd};
}
struct ReadThroughHook {
  explicit ReadThroughHook(Stall& s) { ward::rio::detail::during_read_through = [&s] { s.inside(); }; }
  ~ReadThroughHook() { ward::rio::detail::during_read_through = nullptr; }
};

TEST_F(RioStalls, AReadStalledInReadThroughDoesNotBlockAWriterOfAnotherBlock) {
  { std::ofstream(dir / "cold") << std::string(8192, 'c'); }
  auto c = Cache::open(opts());
  ASSERT_TRUE(c);
  auto hot = (*c)->open_file("hot");
  auto cold = (*c)->open_file("cold", 0);
  ASSERT_TRUE(hot && cold);
  ASSERT_TRUE((*c)->write(*hot, bytes(std::string(4096, 'h')), 0));
  Stall stall;
  ReadThroughHook hook(stall);
  std::string got;
  std::thread reader([&] {
    std::vector<std::byte> out(4096);
    if (auto r = (*c)->read(*cold, out, 4096); r && *r == out.size()) got = str(out);
  });
  ASSERT_TRUE(stall.wait_entered());
  // The reader sits inside its pread. A writer and a reader of a cached block get through.
  bool wrote = (*c)->write(*hot, bytes("H"), 10).has_value();
  std::vector<std::byte> out(16);
  wrote = wrote && (*c)->read(*hot, out, 0).has_value() && str(out) == "hhhhhhhhhhHhhhhh";
  const bool during = stall.still_stalled();
  stall.release();
  reader.join();
  EXPECT_TRUE(wrote);
  EXPECT_TRUE(during) << "the write waited for the stalled read-through: I/O under the cache lock";
  EXPECT_EQ(got, std::string(4096, 'c'));
}

TEST_F(RioStalls, APartialWriteToABlockBeingReadThroughWaitsForItAndBothLand) {
  auto [c, fd] = open_cold(*this, std::string(4096, '.'));
  ASSERT_TRUE(c && fd >= 0);
  Stall stall;
  ReadThroughHook hook(stall);
  // The first write's load goes on once the second write waits for it.
  ward::rio::detail::on_read_through_wait = [&] { stall.release(); };
  struct Unhook {
    ~Unhook() { ward::rio::detail::on_read_through_wait = nullptr; }
  } unhook;
  bool a_ok = false, b_ok = false;
  std::thread a([&] { a_ok = c->write(fd, bytes("AAAA"), 100).has_value(); });
  ASSERT_TRUE(stall.wait_entered());
  std::thread b([&] { b_ok = c->write(fd, bytes("BBBB"), 2000).has_value(); });
  a.join();
  b.join();
  EXPECT_TRUE(a_ok && b_ok);
  EXPECT_GT(c->stats().load_waits, 0u) << "the second write did not wait for the first one's read-through";
  std::string model(4096, '.');
  model.replace(100, 4, "AAAA");
  model.replace(2000, 4, "BBBB");
  std::vector<std::byte> out(4096);
  ASSERT_TRUE(c->read(fd, out, 0));
  EXPECT_EQ(str(out), model);
  c.reset();
  EXPECT_EQ(slurp(dir / "cold"), model);
}

TEST_F(RioStalls, ATruncateDuringAReadThroughWinsOverTheBytesItRead) {
  auto [c, fd] = open_cold(*this, std::string(8192, 'x'));
  ASSERT_TRUE(c && fd >= 0);
  Stall stall;
  ReadThroughHook hook(stall);
  bool a_ok = false;
  std::thread a([&] { a_ok = c->write(fd, bytes("AAAA"), 100).has_value(); });
  ASSERT_TRUE(stall.wait_entered());
  // The write has read the old block 0 ('x' * 4096) and sits in its pread; the file is emptied.
  const bool truncated = c->truncate(fd, 0).has_value();
  const bool during = stall.still_stalled();
  stall.release();
  a.join();
  ASSERT_TRUE(a_ok && truncated);
  EXPECT_TRUE(during) << "the truncate waited for the stalled read-through";
  // The write lands after the truncation: zeros, then its bytes; none of the old 'x'.
  const std::string model = std::string(100, '\0') + "AAAA";
  std::vector<std::byte> out(200);
  auto n = c->read(fd, out, 0);
  ASSERT_TRUE(n);
  EXPECT_EQ(str(std::span(out).first(*n)), model);
  c.reset();
  EXPECT_EQ(slurp(dir / "cold"), model);
}

// Opening a backing file happens without the lock; openers of one new path that race must end
// up with one file (the loser's descriptor is closed), so every write through any of them lands
// in it.
TEST_F(RioStalls, OpenersOfOneNewFileRacingShareOneFile) {
  auto c = Cache::open(opts());
  ASSERT_TRUE(c);
  constexpr int kThreads = 6, kRounds = 20;
  for (int r = 0; r < kRounds; ++r) {
    const std::string name = "new" + std::to_string(r);
    std::vector<int> fds(kThreads, -1);
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t)
      ts.emplace_back([&, t] {
        auto fd = (*c)->open_file(name);
        if (fd && (*c)->write(*fd, bytes(std::string(4096, static_cast<char>('a' + t))), 4096 * static_cast<std::uint64_t>(t)))
          fds[static_cast<std::size_t>(t)] = *fd;
      });
    for (auto& th : ts) th.join();
    std::string model;
    for (int t = 0; t < kThreads; ++t) {
      ASSERT_GE(fds[static_cast<std::size_t>(t)], 0) << t;
      model += std::string(4096, static_cast<char>('a' + t));
    }
    for (int t = 0; t < kThreads; ++t) {
      std::vector<std::byte> out(model.size());
      auto n = (*c)->read(fds[static_cast<std::size_t>(t)], out, 0);
      ASSERT_TRUE(n);
      EXPECT_EQ(str(std::span(out).first(*n)), model) << name << " through the descriptor of thread " << t;
    }
  }
  c->reset();
  for (int r = 0; r < kRounds; ++r) EXPECT_EQ(slurp(dir / ("new" + std::to_string(r))).size(), kThreads * 4096u);
}

// Many threads at once: writers (each its own file, with truncations), readers checking what
// their writer acknowledged, a flusher, and age write-back every few milliseconds, in a cache a
// quarter the size of the data. In the end every file holds exactly its model.
// The cache lock is not fair and writers spin for it; write-back must still get it. One thread,
// then two, rewrite the same blocks in a tight loop (every write wants the lock again at once);
// age write-back (20 ms) must write blocks back while they run. The bound is a deadline for
// progress at all (10 s, 500x the age), not a timing: starved write-back writes back nothing.
TEST_F(RioStalls, ATightLoopOfWritesDoesNotStarveAgeWriteBack) {
  for (const int writers : {1, 2}) {
    auto o = opts(ward::rio::Mode::rio, 4 << 20);
    o.region.path = shm / ("tight" + std::to_string(writers) + ".rio");
    o.writeback_age = std::chrono::milliseconds(20);
    auto c = Cache::open(o);
    ASSERT_TRUE(c);
    std::atomic<bool> stop{false}, failed{false};
    std::vector<std::thread> ts;
    for (int t = 0; t < writers; ++t)
      ts.emplace_back([&, t] {
        auto fd = (*c)->open_file("hot" + std::to_string(t));
        if (!fd) return failed.store(true);
        const std::vector<std::byte> block(4096, std::byte{static_cast<unsigned char>('a' + t)});
        for (std::uint64_t i = 0; !stop.load(std::memory_order_relaxed); ++i)
          if (!(*c)->write(*fd, block, (i % 64) * 4096)) return failed.store(true);
      });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::uint64_t written_back = 0;
    while (written_back < 64 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      written_back = (*c)->stats().written_back;
    }
    stop = true;
    for (auto& th : ts) th.join();
    ASSERT_FALSE(failed);
    EXPECT_GE(written_back, 64u) << "age write-back was starved by " << writers << " writer(s)";
  }
}

TEST_F(RioStalls, ManyThreadsWriteReadTruncateAndFlush) {
  auto o = opts(ward::rio::Mode::rio, 1 << 20);
  o.writeback_age = std::chrono::milliseconds(4);
  constexpr int kWriters = 4;
  constexpr std::size_t kSpan = 256 << 10;
  std::vector<std::string> models(kWriters);
  {
    auto c = Cache::open(o);
    ASSERT_TRUE(c);
    std::atomic<bool> stop{false}, failed{false};
    std::mutex why_mu;
    std::string why;  // the first failure, in words
    auto fail_with = [&](const std::string& w) {
      std::lock_guard l(why_mu);
      if (why.empty()) why = w;
      failed = true;
    };
    std::vector<std::thread> ts;
    for (int t = 0; t < kWriters; ++t) {
      ts.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t) + 11);
        auto fd = (*c)->open_file("t" + std::to_string(t));
        if (!fd) return fail_with("open: " + fd.error().detail);
        std::string& model = models[static_cast<std::size_t>(t)];
        for (int i = 0; i < 300 && !failed; ++i) {
          if (rng() % 40 == 0) {
            const std::size_t size = rng() % kSpan;
            if (auto r = (*c)->truncate(*fd, size); !r) return fail_with("truncate: " + r.error().detail);
            model.resize(size, '\0');
            continue;
          }
          const std::size_t off = rng() % kSpan, len = 1 + rng() % 9000;
          const std::string chunk(len, static_cast<char>('a' + (t * 7 + i) % 26));
          if (auto r = (*c)->write(*fd, bytes(chunk), off); !r) return fail_with("write: " + r.error().detail);
          if (model.size() < off + len) model.resize(off + len, '\0');
          model.replace(off, len, chunk);
          std::vector<std::byte> out(model.size());
          auto got = (*c)->read(*fd, out, 0);
          if (!got) return fail_with("read: " + got.error().detail);
          if (*got != model.size()) return fail_with("read " + std::to_string(*got) + " bytes of " + std::to_string(model.size()));
          if (str(out) != model) return fail_with("read back other bytes than written, thread " + std::to_string(t));
        }
      });
    }
    std::thread flusher([&] {
      while (!stop) (void)(*c)->flush();
    });
    for (auto& th : ts) th.join();
    stop = true;
    flusher.join();
    ASSERT_FALSE(failed) << why;
    EXPECT_GT((*c)->stats().written_back, 0u);
  }  // a clean close writes everything back
  for (int t = 0; t < kWriters; ++t) EXPECT_EQ(slurp(dir / ("t" + std::to_string(t))), models[static_cast<std::size_t>(t)]) << t;
}

// Synced regions (docs/rio.md, "Synced regions: flushes without the lock"): a flush's msyncs run
// without the cache lock, in the write-back thread when the cache runs low and in the caller of
// fsync. While one is stopped between taking its pages and its msync, another thread reads a
// cached block, overwrites it and writes a new one; each must complete before the flush goes on
// (the flush waits for them, bounded: if the lock were held, they could not finish and the flush
// would give up waiting, which fails the test).
struct RioStallsSynced : RioStalls {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, done = false, gave_up = false;
  std::string flusher;  // the flushing thread's name
  void SetUp() override {
    RioStalls::SetUp();
    ward::rio::detail::during_unlocked_flush = [this](int step) {
      if (step != 0) return;
      std::unique_lock l(mu);
      if (entered) return;
      char name[16] = {};
      pthread_getname_np(pthread_self(), name, sizeof name);
      flusher = name;
      entered = true;
      cv.notify_all();
      gave_up = !cv.wait_for(l, std::chrono::seconds(10), [&] { return done; });
    };
  }
  void TearDown() override {
    ward::rio::detail::during_unlocked_flush = nullptr;
    RioStalls::TearDown();
  }
  CacheOptions synced_opts() {
    auto o = opts(ward::rio::Mode::rio, 1 << 20);
    o.region.durability = ward::rio::Durability::synced;
    return o;
  }
  // Waits until a flush has stopped in the hook; then reads and writes from this thread.
  void use_the_cache_during_the_flush(Cache& c, int fd, std::uint64_t new_block) {
    {
      std::unique_lock l(mu);
      ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] { return entered; })) << "no flush started";
    }
    std::vector<std::byte> out(4096);
    const bool ok = c.read(fd, out, 4096).has_value() && str(out) == std::string(4096, 'b') &&
                    c.write(fd, bytes(std::string(4096, 'B')), 4096).has_value() &&
                    c.write(fd, bytes(std::string(4096, 'N')), new_block * 4096).has_value();
    std::lock_guard l(mu);
    EXPECT_TRUE(ok);
    done = true;
    cv.notify_all();
  }
};

TEST_F(RioStallsSynced, AReaderAndWritersAreNotBlockedBehindTheWriteBackThreadsFlush) {
  auto c = Cache::open(synced_opts());
  ASSERT_TRUE(c) << c.error().detail;
  auto fd = (*c)->open_file("s");
  ASSERT_TRUE(fd);
  const std::uint32_t n = (*c)->stats().blocks_total;
  // Three quarters of the cache clean; block 1 holds 'b'.
  for (std::uint32_t b = 0; b < n * 3 / 4; ++b) ASSERT_TRUE((*c)->write(*fd, bytes(std::string(4096, b == 1 ? 'b' : 'x')), b * 4096ull));
  ASSERT_TRUE((*c)->flush());
  // New blocks until fewer than an eighth of the slots are free: the write-back thread retires
  // clean blocks and flushes. Enough free slots remain for the writes below.
  std::uint64_t b = n * 3 / 4;
  while ((*c)->stats().blocks_free >= n / 8) ASSERT_TRUE((*c)->write(*fd, bytes(std::string(4096, 'y')), b++ * 4096));
  use_the_cache_during_the_flush(**c, *fd, b);
  {
    std::lock_guard l(mu);
    EXPECT_EQ(flusher, "rio-writeback");
  }
  c->reset();  // joins the write-back thread: the hook has returned
  EXPECT_FALSE(gave_up) << "the flush waited in vain: the reader and writers were blocked behind it";
  const std::string got = slurp(dir / "s");
  EXPECT_EQ(got.substr(4096, 4096), std::string(4096, 'B'));
  EXPECT_EQ(got.substr(b * 4096, 4096), std::string(4096, 'N'));
}

TEST_F(RioStallsSynced, AReaderAndWritersAreNotBlockedBehindFsync) {
  auto c = Cache::open(synced_opts());
  ASSERT_TRUE(c) << c.error().detail;
  auto fd = (*c)->open_file("s");
  ASSERT_TRUE(fd);
  ASSERT_TRUE((*c)->write(*fd, bytes(std::string(4096, 'a')), 0));
  ASSERT_TRUE((*c)->write(*fd, bytes(std::string(4096, 'b')), 4096));
  auto syncer = std::async(std::launch::async, [&] { return (*c)->fsync(*fd).has_value(); });
  use_the_cache_during_the_flush(**c, *fd, 2);
  EXPECT_TRUE(syncer.get());
  EXPECT_FALSE(gave_up) << "fsync's flush waited in vain: the reader and writers were blocked behind it";
  std::vector<std::byte> out(3 * 4096);
  ASSERT_TRUE((*c)->read(*fd, out, 0));
  EXPECT_EQ(str(out), std::string(4096, 'a') + std::string(4096, 'B') + std::string(4096, 'N'));
}

}  // namespace
