// Damage to the metadata recovery trusts: every byte of the header's mutable state, of every file
// table entry in use and of every registry entry in use is flipped (one run per byte, and every
// bit of the 64-bit words), and recovery runs on that copy. It must either end exactly as an
// undamaged recovery does, or report the damage — and even then no backing file may hold a
// block that is neither its own correct version nor what the file held before, or grow.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>

#include "ward/rio/cache.h"

namespace {

namespace fs = std::filesystem;
namespace L = ward::rio::layout;
using ward::rio::Cache;
using ward::rio::CacheOptions;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void spit(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
}

struct Damage : ::testing::Test {
  fs::path work;
  const std::vector<std::string> names = {"one", "two", "sub/three"};
  void SetUp() override {
    char tmpl[] = "/dev/shm/ward-damage-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    work = tmpl;
  }
  void TearDown() override { fs::remove_all(work); }
};

TEST_F(Damage, EveryMetadataByteFlippedIsReportedOrHarmless) {
  const fs::path region = work / "region.rio", backing = work / "backing";
  fs::create_directories(backing);
  // Known content: three files with clean and dirty blocks, an older version of one block
  // superseded, then a crash (abandon) with everything still in the region.
  {
    CacheOptions o;
    o.backing_dir = backing;
    o.region.path = region;
    o.region.size = 1 << 20;
    o.region.files = 8;
    o.writeback_age = std::chrono::milliseconds(0);
    auto c = Cache::open(o);
    ASSERT_TRUE(c) << c.error().detail;
    int n = 0;
    for (const auto& name : names) {
      auto fd = (*c)->open_file(name);
      ASSERT_TRUE(fd);
      ++n;
      const std::string a(3 * 4096 + 100 * static_cast<std::size_t>(n), static_cast<char>('a' + n));
      ASSERT_TRUE((*c)->write(*fd, std::as_bytes(std::span(a.data(), a.size())), 0));
    }
    ASSERT_TRUE((*c)->flush());  // written back: clean
    for (const auto& name : names) {
      auto fd = (*c)->open_file(name);
      const std::string b(5000, static_cast<char>('A' + n++));
      ASSERT_TRUE((*c)->write(*fd, std::as_bytes(std::span(b.data(), b.size())), 2000));  // dirty, grows one file
    }
    (*c)->abandon();
  }
  const std::string image = slurp(region);
  std::map<std::string, std::string> before, after;
  for (const auto& name : names) before[name] = slurp(backing / name);
  auto run = [&](const std::string& img, std::map<std::string, std::string>& out) -> ward::Result<ward::rio::RecoveryReport> {
    spit(region, img);
    fs::remove_all(backing);
    fs::create_directories(backing / "sub");
    for (const auto& [name, content] : before) spit(backing / name, content);
    ward::rio::RegionOptions ro;
    ro.path = region;
    ro.create = false;
    ro.protection = ward::rio::Protection::off;
    auto r = ward::rio::Region::open(ro);
    if (!r) return std::unexpected(r.error());
    auto rep = ward::rio::recover(**r, backing);
    for (const auto& name : names) out[name] = slurp(backing / name);
    return rep;
  };
  {
    auto rep = run(image, after);
    ASSERT_TRUE(rep) << rep.error().detail;
    ASSERT_FALSE(rep->lost()) << rep->summary();
    ASSERT_GT(rep->written_back, 3u);
  }
  const auto& h = *reinterpret_cast<const L::Header*>(image.data());
  // What to damage: the header state copies, the used file entries, the used registry entries.
  std::vector<std::pair<std::size_t, std::string>> bytes;  // offset, what
  for (std::size_t i = 0; i < 2 * sizeof(L::HeaderState); ++i) bytes.push_back({offsetof(L::Header, state) + i, "header state"});
  for (std::uint32_t f = 0; f < h.nfiles; ++f) {
    const std::size_t off = h.files_off + f * sizeof(L::FileEntry);
    std::uint64_t w;
    std::memcpy(&w, image.data() + off, sizeof w);
    if (w == 0) continue;
    for (std::size_t i = 0; i < 32 + 16; ++i) bytes.push_back({off + i, "file entry " + std::to_string(f)});
  }
  std::size_t entries = 0;
  for (std::uint32_t s = 0; s < h.nblocks; ++s) {
    const std::size_t off = h.registry_off + s * sizeof(L::Entry);
    std::uint64_t w;
    std::memcpy(&w, image.data() + off, sizeof w);
    if (w == 0) continue;
    ++entries;
    for (std::size_t i = 0; i < 40; ++i) bytes.push_back({off + i, "registry entry " + std::to_string(s)});
  }
  ASSERT_GE(entries, 6u);
  std::size_t runs = 0, reported = 0, harmless = 0, refused = 0;
  for (std::size_t k = 0; k < bytes.size(); ++k) {
    const auto [off, what] = bytes[k];
    // Every bit of the words that publish (the first 16 bytes of entries); one bit elsewhere.
    const bool word = what != "header state" && (off - (what[0] == 'f' ? h.files_off : h.registry_off)) %
                                                        (what[0] == 'f' ? sizeof(L::FileEntry) : sizeof(L::Entry)) < 16;
    for (int bit = word ? 0 : static_cast<int>(k % 8); bit < 8; bit += word ? 1 : 8) {
      std::string img = image;
      img[off] = static_cast<char>(img[off] ^ (1 << bit));
      std::map<std::string, std::string> got;
      auto rep = run(img, got);
      ++runs;
      const std::string where = what + ", byte " + std::to_string(off) + " bit " + std::to_string(bit);
      if (!rep) {  // refusing to open a damaged region is a report too
        ++refused;
        continue;
      }
      if (!rep->lost()) {
        ++harmless;
        for (const auto& name : names) EXPECT_EQ(got[name], after[name]) << where << ": recovery reported nothing but " << name << " is wrong";
        continue;
      }
      ++reported;
      for (const auto& name : names) {
        const std::string& g = got[name];
        EXPECT_LE(g.size(), std::max(after[name].size(), before[name].size())) << where << ": " << name << " grew";
        for (std::size_t b = 0; b * 4096 < g.size(); ++b) {
          const auto blk = [&](const std::string& s) { return b * 4096 < s.size() ? s.substr(b * 4096, 4096) : std::string(); };
          const std::string gb = blk(g);
          EXPECT_TRUE(gb == blk(after[name]).substr(0, gb.size()) || gb == blk(before[name]).substr(0, gb.size()) ||
                      gb.find_first_not_of('\0') == std::string::npos)
              << where << ": " << name << " block " << b << " holds bytes that are not its own";
        }
      }
    }
    if (HasFailure()) break;
  }
  std::printf("damage: %zu flips: %zu reported, %zu refused at open, %zu harmless (recovered exactly)\n", runs, reported, refused,
              harmless);
}

}  // namespace
