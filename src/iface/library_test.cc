// Libraries of free functions (WARD_LIBRARY): bound by symbol in the child, types from the
// library's own header, calls spelled like the direct ones; and entry symbols that are not the
// declared table getter, refused at load.
#include <gtest/gtest.h>
#include <zstd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "freefns.h"
#include "interfaces.h"
#include "test_plugins.h"
#include "libraries.h"
#include "ward/backend/find_library.h"

// The header declares freefns_missing; the library does not export it.
WARD_LIBRARY(freefns_with_missing, (freefns_add), (freefns_missing));

namespace {

using namespace std::chrono_literals;

using ward::test::plugin;
using ward::test::quick_policy;

TEST(Library, FreeFunctionsAreBoundBySymbolAndCalledLikeDirectOnes) {
  auto lib = ward::Instance<freefns_lib>::open(plugin("freefns"), quick_policy());
  ASSERT_TRUE(lib) << lib.error().message();
  auto sum = (*lib)->freefns_add(40, 2);
  ASSERT_TRUE(sum) << sum.error().message();
  EXPECT_EQ(sum->unverified_value_i_trust_it(), 42);
  // The proxy and the explicit spelling are the same call.
  auto again = lib->call<&freefns_lib::freefns_add>(-5, 3);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->unverified_value_i_trust_it(), -2);

  std::vector<unsigned char> bytes(1000);
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 7);
  auto s = (*lib)->freefns_sum(bytes.data(), bytes.size());
  ASSERT_TRUE(s);
  std::uint64_t expect = 0;
  for (unsigned char b : bytes) expect += b;
  EXPECT_EQ(s->unverified_value_i_trust_it(), expect);

  std::vector<unsigned char> out(64, 0);
  auto n = (*lib)->freefns_fill(out.data(), out.size(), 0x5a);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->unverified_value_i_trust_it(), 64u);
  EXPECT_EQ(out, std::vector<unsigned char>(64, 0x5a));
}

TEST(Library, AMissingSymbolIsALoadErrorNamingIt) {
  auto lib = ward::Instance<freefns_with_missing>::open(plugin("freefns"), quick_policy());
  ASSERT_FALSE(lib);
  EXPECT_EQ(lib.error().kind, ward::Errc::load_failed);
  EXPECT_NE(lib.error().detail.find("missing symbol"), std::string::npos) << lib.error().detail;
  EXPECT_NE(lib.error().detail.find("freefns_missing"), std::string::npos) << lib.error().detail;
}

TEST(Library, ANameIsFoundTheWayTheLoaderWould) {
  auto found = ward::find_library("libzstd.so.1");
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_EQ(found->front(), '/');
  auto missing = ward::find_library("libward-no-such-library.so.7");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().kind, ward::Errc::load_failed);
  EXPECT_NE(missing.error().detail.find("not found in"), std::string::npos) << missing.error().detail;
  auto lib = ward::Instance<freefns_lib>::open("libward-no-such-library.so.7", quick_policy());
  ASSERT_FALSE(lib);
  EXPECT_EQ(lib.error().kind, ward::Errc::load_failed);
}

// LD_LIBRARY_PATH comes first, as for the loader.
TEST(Library, LdLibraryPathIsSearchedFirst) {
  const char* old = std::getenv("LD_LIBRARY_PATH");
  const std::string saved = old ? old : "";
  setenv("LD_LIBRARY_PATH", WARD_PLUGIN_DIR, 1);
  auto found = ward::find_library("libfreefns.so");
  if (old) setenv("LD_LIBRARY_PATH", saved.c_str(), 1);
  else unsetenv("LD_LIBRARY_PATH");
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_EQ(*found, std::string(WARD_PLUGIN_DIR) + "/libfreefns.so");
}

TEST(Library, ZstdOneShotMatchesTheLibraryCalledDirectly) {
  auto z = ward::Instance<zstd_oneshot>::open("libzstd.so.1", quick_policy());
  ASSERT_TRUE(z) << z.error().message();
  auto version = (*z)->ZSTD_versionNumber();
  ASSERT_TRUE(version);
  EXPECT_EQ(version->unverified_value_i_trust_it(), ZSTD_versionNumber());

  std::string text;
  for (int i = 0; i < 2000; ++i) text += "ward keeps extensions alive " + std::to_string(i % 37) + "; ";
  const std::size_t bound = ZSTD_compressBound(text.size());
  auto wbound = (*z)->ZSTD_compressBound(text.size());
  ASSERT_TRUE(wbound);
  EXPECT_EQ(wbound->unverified_value_i_trust_it(), bound);

  for (int level : {1, 3, 9}) {
    std::vector<char> direct(bound), through(bound);
    const std::size_t dn = ZSTD_compress(direct.data(), direct.size(), text.data(), text.size(), level);
    ASSERT_FALSE(ZSTD_isError(dn));
    auto tn = (*z)->ZSTD_compress(through.data(), through.size(), text.data(), text.size(), level);
    ASSERT_TRUE(tn) << tn.error().message();
    ASSERT_EQ(tn->unverified_value_i_trust_it(), dn) << "level " << level;
    direct.resize(dn);
    through.resize(dn);
    EXPECT_EQ(through, direct) << "level " << level;

    std::vector<char> back(text.size());
    auto bn = (*z)->ZSTD_decompress(back.data(), back.size(), through.data(), through.size());
    ASSERT_TRUE(bn);
    ASSERT_EQ(bn->unverified_value_i_trust_it(), text.size());
    EXPECT_EQ(std::string(back.begin(), back.end()), text);
  }
  // An error code comes back as the library's own, with its name.
  std::vector<char> tiny(4);
  auto err = (*z)->ZSTD_compress(tiny.data(), tiny.size(), text.data(), text.size(), 3);
  ASSERT_TRUE(err);
  const std::size_t code = err->unverified_value_i_trust_it();
  auto is_error = (*z)->ZSTD_isError(code);
  ASSERT_TRUE(is_error);
  EXPECT_NE(is_error->unverified_value_i_trust_it(), 0u);
  auto name = (*z)->ZSTD_getErrorName(code);
  ASSERT_TRUE(name);
  EXPECT_EQ(name->unverified_value_i_trust_it().value_or(""), ZSTD_getErrorName(code));
}

// Under a Supervisor a library is an extension like any other: a crash is recovered and the
// next (idempotent) call runs on a fresh instance.
TEST(Library, ASupervisedLibraryRecoversFromACrash) {
  ward::Supervisor sup;
  auto ext = sup.open<freefns_lib>(plugin("freefns"), quick_policy());
  ASSERT_TRUE(ext) << ext.error().message();
  auto crashed = (**ext)->freefns_crash(1);
  ASSERT_FALSE(crashed);
  EXPECT_EQ(crashed.error().kind, ward::Errc::crashed);
  auto sum = (**ext)->freefns_add(1, 2);
  ASSERT_TRUE(sum) << sum.error().message();
  EXPECT_EQ(sum->unverified_value_i_trust_it(), 3);
  EXPECT_EQ((*ext)->stats().restarts, 1u);
}

// ---- entry symbols that are not the declared table getter ---------------------------------------
struct WrongEntry {
  const char* entry;
  const char* reason;
};
std::ostream& operator<<(std::ostream& os, const WrongEntry& w) { return os << w.entry; }

class WrongEntries : public testing::TestWithParam<WrongEntry> {};

TEST_P(WrongEntries, AreRefusedAtLoadNotAtTheFirstCall) {
  auto p = ward::Instance<probe_api>::load(std::string(WARD_PLUGIN_DIR) + "/hostile/libentry_wrong.so",
                                           GetParam().entry, quick_policy());
  if (p) {
    auto ran = p->call<&probe_api::run>(1L);
    FAIL() << GetParam().entry << " was loaded; run(1): " << (ran ? "returned" : ran.error().message());
  }
  EXPECT_EQ(p.error().kind, ward::Errc::load_failed) << p.error().message();
  EXPECT_NE(p.error().detail.find(GetParam().reason), std::string::npos) << p.error().detail;
}

INSTANTIATE_TEST_SUITE_P(Hostile, WrongEntries,
                         testing::Values(WrongEntry{"entry_returns_int", "not readable memory"},
                                         WrongEntry{"entry_returns_data", "is not code"},
                                         WrongEntry{"entry_data", "not a function"}),
                         [](const testing::TestParamInfo<WrongEntry>& info) { return std::string(info.param.entry); });

}  // namespace
