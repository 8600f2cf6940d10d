// Crash tests with real processes and SIGKILL: the writer is killed at random moments, recovery
// runs, every acknowledged write is verified byte for byte and no block may be torn. Also: stray
// stores under each protection mode, and recovery itself killed midway.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <random>

#include "progress.h"
#include "rio/private_path.h"
#include "rio/torture.h"
#include "ward/rio/cache.h"

namespace {

namespace fs = std::filesystem;

// A fresh private work directory (0700, created exclusively: see rio/private_path.h).
fs::path work(const std::string& name) {
  auto p = ward::rio::make_private_dir(fs::temp_directory_path(), "ward-crash-" + name);
  EXPECT_TRUE(p) << p.error().detail;
  return p ? *p : fs::path();
}

ward::rio::TortureOptions base(const fs::path& w) {
  ward::rio::TortureOptions o;
  o.work_dir = w;
  o.writer = fs::path(WARD_BINARY_DIR) / "ward-rio-writer";
  return o;
}

// CI runs 100 kills; WARD_RIO_KILLS=N runs more.
TEST(RioCrash, AcknowledgedWritesSurviveRandomKills) {
  const fs::path w = work("kills");
  auto o = base(w);
  o.kills = 100;
  if (const char* env = std::getenv("WARD_RIO_KILLS")) o.kills = std::max(1, std::atoi(env));
  o.seed = 42;
  // `make stress` runs thousands: progress on stderr (a bar on a terminal, else a line every 5 s).
  ward::cli::Progress progress({.label = "rio crash", .total = static_cast<std::uint64_t>(o.kills), .unit = "kills",
                                .mode = ward::cli::Progress::mode_for(false)});
  o.progress = [&](int kill, const std::string&) { progress.update(static_cast<std::uint64_t>(kill)); };
  auto r = ward::rio::torture(o);
  progress.finish();
  ASSERT_TRUE(r) << r.error().detail;
  for (const auto& p : r->problems) ADD_FAILURE() << p;
  EXPECT_EQ(r->kills, o.kills);
  EXPECT_EQ(r->lost, 0u);
  EXPECT_EQ(r->torn_blocks, 0u);
  EXPECT_GT(r->ops_acked, static_cast<std::uint64_t>(o.kills));
  EXPECT_GT(r->written_back, 0u);
  std::printf("rio crash: %d kills, %llu ops acknowledged and verified, %llu bytes compared, %llu blocks written back by "
              "recovery, in flight: %llu applied / %llu dropped, %llu torn, %llu lost\n",
              r->kills, static_cast<unsigned long long>(r->ops_acked), static_cast<unsigned long long>(r->bytes_verified),
              static_cast<unsigned long long>(r->written_back), static_cast<unsigned long long>(r->in_flight_applied),
              static_cast<unsigned long long>(r->in_flight_dropped), static_cast<unsigned long long>(r->torn_blocks),
              static_cast<unsigned long long>(r->lost));
  fs::remove_all(w);
}

TEST(RioCrash, MprotectModeSurvivesKillsToo) {
  const fs::path w = work("mprotect");
  auto o = base(w);
  o.kills = 15;
  o.seed = 7;
  o.protection = ward::rio::Protection::mprotect;
  auto r = ward::rio::torture(o);
  ASSERT_TRUE(r) << r.error().detail;
  for (const auto& p : r->problems) ADD_FAILURE() << p;
  EXPECT_TRUE(r->ok());
  fs::remove_all(w);
}

class StrayStore : public ::testing::TestWithParam<ward::rio::Protection> {};

TEST_P(StrayStore, FaultsUnderProtectionAndTheDataVerifies) {
  const fs::path w = work(std::string("stray-") + std::string(ward::rio::to_string(GetParam())));
  auto o = base(w);
  o.kills = 1;
  o.stray = true;
  o.protection = GetParam();
  auto r = ward::rio::torture(o);
  ASSERT_TRUE(r) << r.error().detail;
  ASSERT_TRUE(WIFSIGNALED(r->last_writer_status)) << "status " << r->last_writer_status;
  EXPECT_EQ(WTERMSIG(r->last_writer_status), SIGSEGV);  // fail-stop at the stray store
  for (const auto& p : r->problems) ADD_FAILURE() << p;
  EXPECT_TRUE(r->ok());
  fs::remove_all(w);
}

INSTANTIATE_TEST_SUITE_P(Protected, StrayStore,
                         ::testing::Values(ward::rio::Protection::mprotect, ward::rio::Protection::alias),
                         [](const auto& info) { return std::string(ward::rio::to_string(info.param)); });

// Without protection the stray store lands: this is what Rio's protection prevents. The
// checksum catches it at recovery: the block is reported corrupt and quarantined, never
// written back silently — so the file lacks that acknowledged block, and the run says so.
TEST(StrayStoreUnprotected, CorruptsAndRecoveryReportsIt) {
  const fs::path w = work("stray-off");
  auto o = base(w);
  o.kills = 1;
  o.stray = true;
  o.protection = ward::rio::Protection::off;
  auto r = ward::rio::torture(o);
  ASSERT_TRUE(r) << r.error().detail;
  ASSERT_TRUE(WIFEXITED(r->last_writer_status)) << "status " << r->last_writer_status;
  EXPECT_EQ(WEXITSTATUS(r->last_writer_status), 5);  // the store went through
  EXPECT_FALSE(r->ok());
  bool reported = false;
  for (const auto& p : r->problems) reported |= p.find("corrupt block") != std::string::npos;
  EXPECT_TRUE(reported) << "the corruption must be reported by recovery";
  fs::remove_all(w);
}

// Recovery killed midway and run again ends where an uninterrupted recovery ends.
TEST(RioCrash, RecoveryKilledMidwayThenRerunGivesTheSameResult) {
  const fs::path w = work("rerun");
  auto shm = ward::rio::make_private_dir("/dev/shm", "ward-rerun");
  ASSERT_TRUE(shm) << shm.error().detail;
  const fs::path region = *shm / "region.rio", copy = *shm / "copy.rio";
  // A crashed owner with plenty of dirty data: write through a cache, then abandon it.
  {
    ward::rio::CacheOptions co;
    co.backing_dir = w / "backing";
    fs::create_directories(co.backing_dir);
    co.region.path = region;
    co.region.size = 8 << 20;
    co.writeback_age = std::chrono::milliseconds(0);
    auto c = ward::rio::Cache::open(co);
    ASSERT_TRUE(c);
    for (int f = 0; f < 4; ++f) {
      auto fd = (*c)->open_file("f" + std::to_string(f));
      ASSERT_TRUE(fd);
      std::vector<std::byte> data(700 << 10);
      for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(ward::rio::torture_byte(f, i));
      ASSERT_TRUE((*c)->write(*fd, data, 0));
    }
    (*c)->abandon();
  }
  fs::copy(w / "backing", w / "reference", fs::copy_options::recursive);
  fs::copy_file(region, copy);
  // Reference: one uninterrupted recovery of the copy.
  ward::rio::RecoveryReport ref;
  {
    ward::rio::CacheOptions co;
    co.backing_dir = w / "reference";
    co.region.path = copy;
    auto c = ward::rio::Cache::open(co, &ref);
    ASSERT_TRUE(c);
  }
  EXPECT_GT(ref.written_back, 500u);
  // The original: recovery in a child process, killed at growing delays, then finished here.
  int killed_midway = 0;
  for (int delay_us : {0, 300, 1000, 3000, 8000}) {
    const pid_t pid = fork();
    if (pid == 0) {
      ward::rio::CacheOptions co;
      co.backing_dir = w / "backing";
      co.region.path = region;
      auto c = ward::rio::Cache::open(co);
      if (c) (*c)->abandon();  // recovered; exit without the clean close
      _exit(c ? 0 : 1);
    }
    usleep(static_cast<useconds_t>(delay_us));
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    killed_midway += WIFSIGNALED(st);
  }
  ward::rio::RecoveryReport fin;
  {
    ward::rio::CacheOptions co;
    co.backing_dir = w / "backing";
    co.region.path = region;
    auto c = ward::rio::Cache::open(co, &fin);
    ASSERT_TRUE(c);
  }
  EXPECT_FALSE(fin.lost());
  EXPECT_TRUE(fin.corrupt.empty());
  for (int f = 0; f < 4; ++f) {
    const auto name = "f" + std::to_string(f);
    std::ifstream a(w / "backing" / name, std::ios::binary), b(w / "reference" / name, std::ios::binary);
    const std::string sa((std::istreambuf_iterator<char>(a)), {}), sb((std::istreambuf_iterator<char>(b)), {});
    EXPECT_EQ(sa.size(), 700u << 10) << name;
    EXPECT_TRUE(sa == sb) << name << " differs from the uninterrupted recovery";
  }
  std::printf("recovery rerun: %d of 5 recovery runs killed midway; final state equals the reference\n", killed_midway);
  fs::remove_all(*shm);
  fs::remove_all(w);
}

}  // namespace

namespace {

namespace fs = std::filesystem;

// A cache in a private directory under /dev/shm, removed at the end of the test even when it fails.
struct ShmCache {
  fs::path w;
  ward::rio::CacheOptions co;
  explicit ShmCache(std::uint64_t region_size) {
    char tmpl[] = "/dev/shm/ward-crash-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    w = tmpl;
    co.backing_dir = w / "backing";
    fs::create_directories(co.backing_dir);
    co.region.path = w / "region.rio";
    co.region.size = region_size;
    co.writeback_age = std::chrono::milliseconds(0);
  }
  ~ShmCache() { fs::remove_all(w); }
};

// 11.4: a block reaching past the end of its file (a write whose size update a crash cut off),
// which write-back cannot tell from a write in progress and so leaves dirty, is cut at the end
// by a clean close: the region closes clean with nothing dirty, and the backing file holds what
// the recovered cache served: the recorded size, nothing of the block past it. (Before: the block
// stayed dirty for ever, and the region was, rightly, never marked clean.)
TEST(RioCrash, ABlockPastTheEndIsCutAtACleanClose) {
  ShmCache t(1 << 20);
  const auto& co = t.co;
  {
    auto c = ward::rio::Cache::open(co);
    ASSERT_TRUE(c);
    auto fd = (*c)->open_file("p");
    ASSERT_TRUE(fd);
    const std::vector<std::byte> small(100, std::byte{'s'});
    ASSERT_TRUE((*c)->write(*fd, small, 0));
    // The crash: a full block version published, the file's size (100) not yet moved.
    ward::rio::Region& r = *(*c)->region();
    const std::vector<std::byte> full(4096, std::byte{'f'});
    const auto gen = static_cast<std::uint32_t>(ward::rio::layout::file_gen(r.file(0).word.load()));
    r.write_block(r.nblocks() - 1, 0, gen, 0, full, r.next_seq());
    (*c)->abandon();
  }
  std::string served;
  {  // recovery, what it serves, then a clean close
    auto c = ward::rio::Cache::open(co);
    ASSERT_TRUE(c);
    auto fd = (*c)->open_file("p");
    ASSERT_TRUE(fd);
    std::vector<std::byte> buf(8192);
    auto n = (*c)->read(*fd, buf, 0);
    ASSERT_TRUE(n);
    ASSERT_EQ(*n, 100u);
    served.assign(reinterpret_cast<const char*>(buf.data()), *n);
  }
  auto in = ward::rio::inspect(co.region.path);
  ASSERT_TRUE(in) << in.error().detail;
  EXPECT_EQ(in->dirty, 0u);
  EXPECT_TRUE(in->clean);
  std::ifstream f(co.backing_dir / "p", std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, served);
  // And open again: no recovery needed, the same 100 bytes.
  ward::rio::RecoveryReport rep;
  auto c = ward::rio::Cache::open(co, &rep);
  ASSERT_TRUE(c);
  EXPECT_FALSE(rep.needed);
  auto fd = (*c)->open_file("p");
  ASSERT_TRUE(fd);
  EXPECT_EQ(*(*c)->size(*fd), 100u);
}

// 11.4: an unlink killed at any moment leaves the file whole (every acknowledged byte) or gone,
// never the written-back part without the cached part.
TEST(RioCrash, InterruptedUnlinkLeavesTheFileWholeOrGone) {
  ShmCache t(4 << 20);
  const auto& co = t.co;
  constexpr std::size_t kLen = 300 * 4096;
  auto content = [](int i, char v) { return std::string(kLen, static_cast<char>(v + i % 7)); };
  std::mt19937 rng(11);
  int kills = 0, mid = 0;
  for (int round = 0; round < 40; ++round) {
    int p[2];
    ASSERT_EQ(pipe(p), 0);
    const pid_t pid = fork();
    if (pid == 0) {
      ::close(p[0]);
      auto c = ward::rio::Cache::open(co);
      if (!c) _exit(3);
      for (int i = 0;; ++i) {
        const std::string name = "u" + std::to_string(round) + "-" + std::to_string(i);
        auto fd = (*c)->open_file(name);
        const std::string a = content(i, 'a'), b = content(i, 'A');
        if (!fd || !(*c)->write(*fd, std::as_bytes(std::span(a.data(), a.size())), 0) || !(*c)->flush() ||
            !(*c)->write(*fd, std::as_bytes(std::span(b.data(), b.size())), 0))
          _exit(4);
        const int acked = i;
        if (::write(p[1], &acked, sizeof acked) != sizeof acked) _exit(5);
        if (!(*c)->unlink(name)) _exit(6);
      }
    }
    ::close(p[1]);
    usleep(2000 + rng() % 20000);
    kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    ++kills;
    int last = -1, v;
    while (::read(p[0], &v, sizeof v) == sizeof v) last = v;
    ::close(p[0]);
    { ASSERT_TRUE(ward::rio::Cache::open(co)); }  // recovery, then a clean close
    for (int i = 0; i <= last; ++i) {
      const fs::path f = co.backing_dir / ("u" + std::to_string(round) + "-" + std::to_string(i));
      if (!fs::exists(f)) continue;
      std::ifstream in(f, std::ios::binary);
      const std::string got((std::istreambuf_iterator<char>(in)), {});
      ASSERT_EQ(i, last) << f << ": an unlink that returned left the file behind";
      ++mid;
      EXPECT_TRUE(got == content(i, 'A')) << f << ": neither its acknowledged contents nor gone (" << got.size() << " bytes)";
    }
  }
  std::printf("interrupted unlink: %d kills, %d left the last acknowledged file in place (whole)\n", kills, mid);
}

}  // namespace
