// Process domains with well-behaved plugins: loading, every supported argument kind in both
// directions, nested crossings, host services.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "interfaces.h"

namespace {

std::string plugin(const char* name) { return std::string(WARD_PLUGIN_DIR) + "/lib" + name + ".so"; }

std::vector<std::string> g_log;
void host_log(const char* msg) { g_log.emplace_back(msg); }
[[maybe_unused]] std::uint64_t host_now() { return 42; }

TEST(Domain, LoadsAndCallsTextTransformer) {
  auto p = ward::Instance<textxform_api>::load(plugin("textxform"), "textxform_entry");
  ASSERT_TRUE(p) << p.error().message();
  g_log.clear();
  static const text_host host{host_log};
  auto init = p->call<&textxform_api::init>(&host, "upper");
  ASSERT_TRUE(init) << init.error().message();
  EXPECT_EQ(init->unverified_value_i_trust_it(), 0);
  ASSERT_EQ(g_log.size(), 1u);
  EXPECT_EQ(g_log[0], "textxform: mode=upper");

  char out[64];
  std::memset(out, 'x', sizeof out);
  auto n = p->call<&textxform_api::transform>("hello, ward", out, sizeof out);
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(n->unverified_value_i_trust_it(), 11);
  EXPECT_STREQ(out, "HELLO, WARD");

  auto words = p->call<&textxform_api::count_words>("one two  three");
  ASSERT_TRUE(words);
  EXPECT_EQ(words->unverified_value_i_trust_it(), 3);

  auto mode = p->call<&textxform_api::mode_name>();
  ASSERT_TRUE(mode) << mode.error().message();
  auto m = mode->verify([](const std::optional<std::string>& s) { return s.has_value(); }, "mode name");
  ASSERT_TRUE(m);
  EXPECT_EQ(**m, "upper");
  EXPECT_TRUE(p->domain().alive());
}
}  // namespace

namespace {

struct DeviceFixture : ::testing::Test {
  void SetUp() override {
    auto p = ward::Instance<device_api>::load(plugin("device"), "device_entry");
    ASSERT_TRUE(p) << p.error().message();
    dev.emplace(std::move(*p));
    g_log.clear();
    auto r = dev->call<&device_api::init>(&host);
    ASSERT_TRUE(r) << r.error().message();
  }
  static constexpr device_host host{host_log, host_now};
  std::optional<ward::Instance<device_api>> dev;
};

TEST_F(DeviceFixture, StructsByPointerAndByValue) {
  const device_config cfg{512, 16, 2.5, 7};
  auto r = dev->call<&device_api::configure>(&cfg);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->unverified_value_i_trust_it(), 0);
  auto got = dev->call<&device_api::get_config>();
  ASSERT_TRUE(got) << got.error().message();
  const device_config c = got->unverified_value_i_trust_it();
  EXPECT_EQ(c.block_size, 512u);
  EXPECT_EQ(c.blocks, 16u);
  EXPECT_DOUBLE_EQ(c.gain, 2.5);
  EXPECT_EQ(c.flags, 7);
}

TEST_F(DeviceFixture, BuffersInAndOutWithShadowCopies) {
  const device_config cfg{64, 4, 1.0, 0};
  ASSERT_TRUE(dev->call<&device_api::configure>(&cfg));
  std::uint8_t data[64];
  for (int i = 0; i < 64; ++i) data[i] = static_cast<std::uint8_t>(i * 3);
  auto w = dev->call<&device_api::write>(2u, data, sizeof data);
  ASSERT_TRUE(w) << w.error().message();
  EXPECT_EQ(w->unverified_value_i_trust_it(), 64);
  std::uint8_t back[64] = {};
  auto r = dev->call<&device_api::read>(2u, back, sizeof back);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(std::memcmp(back, data, sizeof data), 0);
  device_stats st{};
  ASSERT_TRUE(dev->call<&device_api::stats>(&st));
  EXPECT_EQ(st.writes, 1u);
  EXPECT_EQ(st.reads, 1u);
  EXPECT_EQ(st.bytes_written, 64u);
}

TEST_F(DeviceFixture, FloatingPointMixedArguments) {
  auto r = dev->call<&device_api::scale>(3.0, 0.5f, -4);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_DOUBLE_EQ(r->unverified_value_i_trust_it(), 3.0 * 1.0 * 0.5 - 4);
}

TEST_F(DeviceFixture, ArraysOfStructsInAndArraysOut) {
  const device_config cfgs[3] = {{1, 2, 0, 0}, {10, 20, 0, 0}, {100, 200, 0, 0}};
  std::uint32_t sums[3] = {};
  auto r = dev->call<&device_api::fill>(5u, cfgs, std::size_t{3}, sums, std::size_t{3});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->unverified_value_i_trust_it(), 3);
  EXPECT_EQ(sums[0], 8u);
  EXPECT_EQ(sums[1], 35u);
  EXPECT_EQ(sums[2], 305u);
}

TEST_F(DeviceFixture, PluginCallsHostServices) {
  auto r = dev->call<&device_api::log_echo>("tick", 3L);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->unverified_value_i_trust_it(), 3);
  ASSERT_EQ(g_log.size(), 3u);
  for (const auto& s : g_log) EXPECT_EQ(s, "tick");
}

// host -> plugin -> host -> plugin -> ... : the host's log service calls back into the plugin.
ward::Instance<device_api>* g_nested = nullptr;
int g_depth = 0;
int g_max_depth = 0;
void nesting_log(const char*) {
  ++g_depth;
  g_max_depth = std::max(g_max_depth, g_depth);
  if (g_depth < 12) {
    auto r = g_nested->call<&device_api::log_echo>("deeper", 1L);
    EXPECT_TRUE(r) << r.error().message();
  }
  --g_depth;
}

TEST(Domain, NestedCrossingsToAnyDepth) {
  auto p = ward::Instance<device_api>::load(plugin("device"), "device_entry");
  ASSERT_TRUE(p) << p.error().message();
  static constexpr device_host nesting_host{nesting_log, host_now};
  ASSERT_TRUE(p->call<&device_api::init>(&nesting_host));
  g_nested = &*p;
  g_depth = g_max_depth = 0;
  auto r = p->call<&device_api::log_echo>("start", 1L);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(g_max_depth, 12);
  // The channel is back to normal afterwards.
  auto ping = p->call<&device_api::ping>();
  ASSERT_TRUE(ping) << ping.error().message();
  g_nested = nullptr;
}

TEST(Domain, ChecksumInoutAndOutBuffers) {
  auto p = ward::Instance<checksum_api>::load(plugin("checksum"), "checksum_entry");
  ASSERT_TRUE(p) << p.error().message();
  const char* s = "123456789";
  auto crc = p->call<&checksum_api::crc32>(reinterpret_cast<const std::uint8_t*>(s), std::size_t{9});
  ASSERT_TRUE(crc) << crc.error().message();
  EXPECT_EQ(crc->unverified_value_i_trust_it(), 0xCBF43926u);
  std::vector<std::uint8_t> buf(4096);
  ASSERT_TRUE(p->call<&checksum_api::fill_pattern>(buf.data(), buf.size(), std::uint8_t{7}));
  for (std::size_t i = 0; i < buf.size(); ++i) ASSERT_EQ(buf[i], static_cast<std::uint8_t>(7 + i * 31));
  ASSERT_TRUE(p->call<&checksum_api::xor_inplace>(buf.data(), buf.size(), std::uint8_t{0xFF}));
  for (std::size_t i = 0; i < buf.size(); ++i) ASSERT_EQ(buf[i], static_cast<std::uint8_t>(~(7 + i * 31)));
  std::uint32_t sums[4] = {};
  auto n = p->call<&checksum_api::block_sums>(buf.data(), buf.size(), 1024u, sums, std::size_t{4});
  ASSERT_TRUE(n);
  EXPECT_EQ(n->unverified_value_i_trust_it(), 4u);
  auto one = p->call<&checksum_api::crc32>(buf.data(), std::size_t{1024});
  ASSERT_TRUE(one);
  EXPECT_EQ(sums[0], one->unverified_value_i_trust_it());
}

ward::Instance<device_api>* g_arena_dev = nullptr;
std::optional<ward::Error> g_nested_error;
void arena_hungry_log(const char*) {
  std::vector<std::uint8_t> big(g_arena_dev->domain().frame_capacity() - 64);
  auto r = g_arena_dev->call<&device_api::write>(0u, big.data(), big.size());
  if (!r) g_nested_error = r.error();
}

TEST(Domain, ArenaExhaustedAtDepthIsALimitAndTheDomainSurvives) {
  auto pol = ward::Policy::builder().arena_size(256 << 10).build();
  ASSERT_TRUE(pol);
  auto p = ward::Instance<device_api>::load(plugin("device"), "device_entry", *pol);
  ASSERT_TRUE(p) << p.error().message();
  g_arena_dev = &*p;
  // At the top level the argument fits (the plugin then rejects the size: -22, not our concern).
  std::vector<std::uint8_t> big(p->domain().frame_capacity() - 64);
  auto top = p->call<&device_api::write>(0u, big.data(), big.size());
  ASSERT_TRUE(top) << top.error().message();
  EXPECT_EQ(top->unverified_value_i_trust_it(), -19);  // not configured
  // One level down, the outer frame is still live: no room.
  static constexpr device_host h{arena_hungry_log, host_now};
  ASSERT_TRUE(p->call<&device_api::init>(&h));
  g_nested_error.reset();
  auto r = p->call<&device_api::log_echo>("x", 1L);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(g_nested_error);
  EXPECT_EQ(g_nested_error->kind, ward::Errc::limit) << g_nested_error->message();
  EXPECT_NE(g_nested_error->detail.find("arena exhausted"), std::string::npos);
  EXPECT_TRUE(p->domain().alive());
  g_arena_dev = nullptr;
}

TEST(Domain, SeveralDomainsOfTheSamePluginAreIndependent) {
  auto a = ward::Instance<device_api>::load(plugin("device"), "device_entry");
  auto b = ward::Instance<device_api>::load(plugin("device"), "device_entry");
  ASSERT_TRUE(a && b);
  EXPECT_NE(ward::pid_of(a->domain()), ward::pid_of(b->domain()));
  const device_config ca{8, 1, 3.0, 0};
  ASSERT_TRUE(a->call<&device_api::configure>(&ca));
  auto ga = a->call<&device_api::get_config>();
  auto gb = b->call<&device_api::get_config>();
  ASSERT_TRUE(ga && gb);
  EXPECT_EQ(ga->unverified_value_i_trust_it().block_size, 8u);
  EXPECT_EQ(gb->unverified_value_i_trust_it().block_size, 0u);
}

}  // namespace
