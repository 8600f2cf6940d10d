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
  auto p = ward::Plugin<textxform_api>::load(plugin("textxform"), "textxform_entry");
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
