// Buffer sizes wherever C puts them (iface/size.h), end to end through a real child: a pointer
// to a length (capacity in, filled length out), a constant, a product of parameters, a field of
// a struct argument (by pointer and by value), the return value as the count produced, and the
// sizes host services may declare. Hostile cases: a plugin that reports more than it was given,
// through the length or the result, and one that passes a host service a negative count. Misuse:
// negative counts and products that overflow fail before anything crosses.
#include <gtest/gtest.h>

#include <climits>
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "sizes_lib.h"
#include "ward/ward.h"

WARD_INTERFACE(sl_host, (take_quad, ward::in(0, ward::elems(4))), (take_pairs, ward::in(0, ward::arg(1) * 2)),
               (give_triples, ward::out(0, ward::arg(1) * 3)));
WARD_INTERFACE(sizes_api, (set_mode),
               (get, ward::out(0, ward::deref(1)).filled(ward::deref(1)), ward::inout(1)),
               (get_i, ward::out(0, ward::deref(1)).filled(ward::deref(1)), ward::inout(1)),
               (fill_block, ward::out(0, ward::elems(16))),
               (paint, ward::out(0, ward::arg(1) * ward::arg(2) * 4)),
               (sum_box, ward::in(0, ward::arg(1) * ward::arg(2) * ward::arg(3) * ward::arg(4))),
               (sum_msg, ward::in(0), ward::in(1, ward::field<&sl_hdr::len>(0))),
               (sum_msg_val, ward::in(1, ward::field<&sl_hdr::len>(0))),
               (produce, ward::out(0, ward::arg(1)).filled(ward::result)),
               (call_host, ward::services(0)));

namespace {

// The field's place, computed at compile time from the member pointer.
constexpr ward::Size kLen = ward::field<&sl_hdr::len>(0);
static_assert(kLen.factors[0].offset == offsetof(sl_hdr, len));
static_assert(kLen.factors[0].width == sizeof(std::int16_t) && kLen.factors[0].is_signed);
static_assert(ward::field<&sl_hdr::id>(0).factors[0].offset == offsetof(sl_hdr, id));
static_assert(ward::field<&sl_hdr::tag>(0).factors[0].offset == offsetof(sl_hdr, tag));
// `in(i, 3)` with an integer still means "parameter 3".
static_assert(ward::in(0, 3).count.n == 1 && ward::in(0, 3).count.factors[0].from == ward::Size::From::arg &&
              ward::in(0, 3).count.factors[0].index == 3);
// Constants fold; products keep every variable factor.
static_assert((ward::arg(1) * 2 * ward::arg(2) * 3).constant == 6 && (ward::arg(1) * 2 * ward::arg(2) * 3).n == 2);

std::string plugin() { return std::string(WARD_PLUGIN_DIR) + "/libsizes_lib.so"; }

const std::string kMessage = "sizes: hello, world";

struct Seen {
  std::vector<std::uint32_t> quad;
  std::vector<std::uint16_t> pairs;
  int calls = 0;
} g_seen;

constexpr sl_host kHost{
    [](const std::uint32_t* q) {
      g_seen.quad.assign(q, q + 4);
      ++g_seen.calls;
    },
    [](const std::uint16_t* v, int n) {
      g_seen.pairs.assign(v, v + 2 * n);
      ++g_seen.calls;
    },
    [](std::uint8_t* out, std::uint32_t n) {
      for (std::uint32_t k = 0; k < 3 * n; ++k) out[k] = static_cast<std::uint8_t>(k + 1);
      ++g_seen.calls;
    },
};

struct Sizes : ::testing::Test {
  void SetUp() override {
    g_seen = {};
    auto pol = ward::Policy::builder().grant("sl_host").build();
    ASSERT_TRUE(pol);
    auto p = ward::Instance<sizes_api>::load(plugin(), "sizes_entry", *pol);
    ASSERT_TRUE(p) << p.error().message();
    sl.emplace(std::move(*p));
  }
  void mode(int m) { ASSERT_TRUE(sl->call<&sizes_api::set_mode>(m)); }
  // A filled length the extension misreports in mode `m`: bad_data, and neither the host's
  // buffer nor its length changes.
  template <auto M, class Len>
  void expect_bad_length(int m) {
    mode(m);
    char buf[32];
    std::memset(buf, '.', sizeof buf);
    Len len = 24;
    auto r = sl->call<M>(buf, &len);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ward::Errc::bad_data) << r.error().message();
    EXPECT_EQ(len, Len{24}) << "the host's length keeps its value";
    EXPECT_EQ(std::string(buf, sizeof buf), std::string(sizeof buf, '.')) << "and its buffer its bytes";
  }
  std::optional<ward::Instance<sizes_api>> sl;
};

// ---- deref: capacity in, filled length out ------------------------------------------------------

TEST_F(Sizes, ADerefedLengthIsTheCapacityAndComesBackAsTheFilledLength) {
  char buf[64];
  std::memset(buf, '.', sizeof buf);
  std::size_t len = 40;
  auto r = sl->call<&sizes_api::get>(buf, &len);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(len, kMessage.size());
  EXPECT_EQ(std::string(buf, len), kMessage);
  // The plugin scribbled '#' over its whole capacity; only the filled part reaches the host, the
  // rest of the host's buffer is as the host left it (as with a direct call).
  EXPECT_EQ(std::string(buf + len, sizeof buf - len), std::string(sizeof buf - len, '.'));
}

TEST_F(Sizes, ASmallCapacityLimitsWhatTheExtensionSeesAndFills) {
  char buf[8];
  std::memset(buf, '.', sizeof buf);
  std::size_t len = 5;
  auto r = sl->call<&sizes_api::get>(buf, &len);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(len, 5u);
  EXPECT_EQ(std::string(buf, sizeof buf), kMessage.substr(0, 5) + "...");
}

TEST_F(Sizes, AFilledLengthPastTheCapacityIsBadDataAndNothingIsCopiedBack) {
  expect_bad_length<&sizes_api::get, std::size_t>(SL_LEN_PAST_CAPACITY);
}

TEST_F(Sizes, ANegativeFilledLengthIsBadData) { expect_bad_length<&sizes_api::get_i, std::int32_t>(SL_LEN_NEGATIVE); }

TEST_F(Sizes, ANegativeCapacityOrANullLengthIsMisuse) {
  char buf[8];
  std::int32_t neg = -1;
  auto r = sl->call<&sizes_api::get_i>(buf, &neg);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse) << r.error().message();
  EXPECT_EQ(neg, -1);
  auto n = sl->call<&sizes_api::get>(buf, static_cast<std::size_t*>(nullptr));
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().kind, ward::Errc::misuse) << n.error().message();
  // The domain is fine: misuse never reaches the extension.
  std::size_t len = sizeof buf;
  EXPECT_TRUE(sl->call<&sizes_api::get>(buf, &len));
}

// ---- constants and products -------------------------------------------------------------------

TEST_F(Sizes, AConstantCountCopiesExactlyThatMany) {
  std::uint32_t block[17];
  for (auto& b : block) b = 0xdeadbeef;
  ASSERT_TRUE(sl->call<&sizes_api::fill_block>(block));
  for (std::uint32_t i = 0; i < 16; ++i) EXPECT_EQ(block[i], i * i) << i;
  EXPECT_EQ(block[16], 0xdeadbeefu) << "one past the constant is the host's";
}

TEST_F(Sizes, AProductOfParametersAndAConstantSizesAnImage) {
  constexpr int w = 5, h = 3;
  std::vector<std::uint8_t> px(w * h * 4 + 8, 0xee);
  ASSERT_TRUE(sl->call<&sizes_api::paint>(px.data(), w, h));
  for (std::size_t k = 0; k < w * h * 4; ++k) ASSERT_EQ(px[k], static_cast<std::uint8_t>(k * 7 + 1)) << k;
  for (std::size_t k = w * h * 4; k < px.size(); ++k) EXPECT_EQ(px[k], 0xee) << "past the image: " << k;
}

TEST_F(Sizes, FourVariableFactors) {
  std::vector<std::uint8_t> v(2 * 3 * 4 * 5);
  std::uint64_t want = 0;
  for (std::size_t k = 0; k < v.size(); ++k) want += v[k] = static_cast<std::uint8_t>(k * 13);
  auto r = sl->call<&sizes_api::sum_box>(v.data(), std::size_t{2}, std::size_t{3}, std::size_t{4}, std::size_t{5});
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->unverified_value_i_trust_it(), want);
}

TEST_F(Sizes, ANegativeFactorIsMisuse) {
  std::uint8_t px[16];
  auto r = sl->call<&sizes_api::paint>(px, -1, 4);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse) << r.error().message();
  EXPECT_NE(r.error().message().find("negative"), std::string::npos) << r.error().message();
}

TEST_F(Sizes, AProductThatOverflowsIsMisuse) {
  std::uint8_t v[4] = {};
  const std::size_t big = std::size_t{1} << 16;  // 2^64 in all
  auto r = sl->call<&sizes_api::sum_box>(v, big, big, big, big);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse) << r.error().message();
  EXPECT_NE(r.error().message().find("overflows"), std::string::npos) << r.error().message();
  // Products that stay within 64 bits but exceed any arena are refused too, not truncated.
  auto wide = sl->call<&sizes_api::paint>(v, INT_MAX, INT_MAX);
  ASSERT_FALSE(wide);
  EXPECT_NE(wide.error().kind, ward::Errc::crashed) << wide.error().message();
}

TEST_F(Sizes, ANullBufferWithAConstantCountIsMisuse) {
  auto r = sl->call<&sizes_api::fill_block>(nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse) << r.error().message();
}

// ---- a field of a struct argument --------------------------------------------------------------

TEST_F(Sizes, AFieldOfAStructSizesTheBodyByPointerAndByValue) {
  // `id` is large: a size read from the wrong field would be refused or copy far too much.
  const sl_hdr h{.version = 1, .id = 1000000, .len = 7, .tag = 9};
  const std::uint8_t body[12] = {1, 2, 3, 4, 5, 6, 7, 100, 100, 100, 100, 100};
  const std::uint64_t want = 1000000 + 1 + 2 + 3 + 4 + 5 + 6 + 7;
  auto r = sl->call<&sizes_api::sum_msg>(&h, body);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->unverified_value_i_trust_it(), want);
  auto v = sl->call<&sizes_api::sum_msg_val>(h, body);
  ASSERT_TRUE(v) << v.error().message();
  EXPECT_EQ(v->unverified_value_i_trust_it(), want);
}

TEST_F(Sizes, ANegativeFieldOrANullStructIsMisuse) {
  const sl_hdr h{.version = 1, .id = 0, .len = -3, .tag = 0};
  const std::uint8_t body[4] = {};
  auto r = sl->call<&sizes_api::sum_msg>(&h, body);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::misuse) << r.error().message();
  auto v = sl->call<&sizes_api::sum_msg_val>(h, body);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().kind, ward::Errc::misuse) << v.error().message();
  auto n = sl->call<&sizes_api::sum_msg>(nullptr, body);
  ASSERT_FALSE(n);
  EXPECT_EQ(n.error().kind, ward::Errc::misuse) << n.error().message();
}

// ---- the result counts what was produced ----------------------------------------------------------

TEST_F(Sizes, TheResultCountsWhatWasProducedAndOnlyThatIsCopied) {
  std::uint8_t buf[16];
  std::memset(buf, '.', sizeof buf);
  auto r = sl->call<&sizes_api::produce>(buf, sizeof buf);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->unverified_value_i_trust_it(), 10);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf), sizeof buf), "abcdefghij......");
}

TEST_F(Sizes, AResultPastTheCapacityIsAnErrorCodeNothingIsCopiedTheResultIsReturned) {
  for (int m : {SL_RESULT_PAST_CAPACITY, SL_RESULT_NEGATIVE}) {
    mode(m);
    std::uint8_t buf[16];
    std::memset(buf, '.', sizeof buf);
    auto r = sl->call<&sizes_api::produce>(buf, sizeof buf);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->unverified_value_i_trust_it(), m == SL_RESULT_NEGATIVE ? -1 : 17);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(buf), sizeof buf), std::string(sizeof buf, '.')) << "mode " << m;
  }
}

// ---- host services: sizes the child computes ----------------------------------------------------

TEST_F(Sizes, HostServicesTakeConstantsAndParameterTimesConstant) {
  auto r = sl->call<&sizes_api::call_host>(&kHost);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(g_seen.calls, 3);
  EXPECT_EQ(g_seen.quad, (std::vector<std::uint32_t>{11, 22, 33, 44}));
  EXPECT_EQ(g_seen.pairs, (std::vector<std::uint16_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(r->unverified_value_i_trust_it(), 1u + 2 + 3 + 4 + 5 + 6) << "the host's 3 * n out bytes reached the plugin";
}

TEST_F(Sizes, ANegativeCountToAHostServiceIsAViolation) {
  mode(SL_HOST_NEGATIVE_COUNT);
  auto r = sl->call<&sizes_api::call_host>(&kHost);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::violation) << r.error().message();
  EXPECT_TRUE(g_seen.pairs.empty()) << "the service never ran";
}

}  // namespace
