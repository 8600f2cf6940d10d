// The interface layer: what a declaration compiles into (the wire schema the child builds its
// libffi calls from) and, end to end through a real domain, every argument and return kind of the
// C calling convention in both directions.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "interfaces.h"


namespace {

namespace w = ward::schema;
using ward::detail::param_desc;

template <auto M>
using ApiOf = typename ward::detail::member_fn<decltype(M)>::api;
template <auto M>
using FnOf = std::tuple_element_t<ward::detail::index_of_fn<ApiOf<M>, M>(), ward::detail::fns_tuple<ApiOf<M>>>;

TEST(Schema, ParameterKindsFollowTheDeclaration) {
  using F = FnOf<&textxform_api::transform>;
  constexpr w::Param in = param_desc<F, 0>();
  constexpr w::Param out = param_desc<F, 1>();
  constexpr w::Param cap = param_desc<F, 2>();
  EXPECT_EQ(in.kind, w::Kind::cstring);
  EXPECT_EQ(out.kind, w::Kind::buffer);
  EXPECT_EQ(out.dir, w::Dir::out);
  EXPECT_EQ(out.count_arg, 2);
  EXPECT_EQ(out.size, 1u);
  EXPECT_EQ(cap.kind, w::Kind::u64);
  EXPECT_TRUE(F::is_idempotent);
  EXPECT_FALSE(F::replays);
  EXPECT_TRUE(FnOf<&textxform_api::init>::replays);
}

TEST(Schema, ByValueStructLayoutsForTheCAbi) {
  constexpr w::Param p = param_desc<FnOf<&zoo_api::scale_big>, 0>();
  EXPECT_EQ(p.kind, w::Kind::record);
  EXPECT_EQ(p.size, sizeof(big_rec));
  // big_rec { dpair{double, int64}, inner{int16, uint8}, double, uint64 }
  const w::Tok want[] = {w::Tok::begin, w::Tok::begin, w::Tok::f64, w::Tok::i64, w::Tok::close,
                         w::Tok::begin, w::Tok::i16,   w::Tok::u8,  w::Tok::close, w::Tok::f64,
                         w::Tok::u64,   w::Tok::close, w::Tok::end};
  for (std::size_t i = 0; i < std::size(want); ++i) EXPECT_EQ(p.layout[i], want[i]) << "token " << i;
}

TEST(Schema, EnumsAndBoolsBecomeTheirIntegers) {
  EXPECT_EQ((param_desc<FnOf<&zoo_api::next_color>, 0>().kind), w::Kind::u32);
  EXPECT_EQ((ward::detail::ret_desc<FnOf<&zoo_api::is_even>>().kind), w::Kind::u8);
  EXPECT_EQ((ward::detail::ret_desc<FnOf<&zoo_api::half>>().kind), w::Kind::i16);
}

TEST(Schema, ServiceTablesGetIdsInOrderOfAppearance) {
  EXPECT_EQ((ward::detail::service_id<textxform_api, text_host>()), 1u);
  EXPECT_EQ((param_desc<FnOf<&textxform_api::init>, 0>().table), 1u);
  EXPECT_EQ((param_desc<FnOf<&zoo_api::use_host>, 0>().kind), w::Kind::services);
}

TEST(Schema, MemberOffsetsMatchTheStruct) {
  EXPECT_EQ(ward::detail::member_offset<&device_api::init>(), offsetof(device_api, init));
  EXPECT_EQ(ward::detail::member_offset<&device_api::log_echo>(), offsetof(device_api, log_echo));
}

std::string plugin(const char* name) { return std::string(WARD_PLUGIN_DIR) + "/lib" + name + ".so"; }

struct Zoo : ::testing::Test {
  void SetUp() override {
    auto p = ward::Instance<zoo_api>::load(plugin("abi_zoo"), "zoo_entry");
    ASSERT_TRUE(p) << p.error().message();
    zoo.emplace(std::move(*p));
  }
  template <class T>
  static T value(const ward::Result<ward::Tainted<T>>& r) {
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? r->unverified_value_i_trust_it() : T{};
  }
  std::optional<ward::Instance<zoo_api>> zoo;
};

TEST_F(Zoo, StructsOfEveryRegisterClass) {
  const vec2 v = value(zoo->call<&zoo_api::add_vec>(vec2{1.5f, 2}, vec2{0.25f, -4}));
  EXPECT_FLOAT_EQ(v.x, 1.75f);
  EXPECT_FLOAT_EQ(v.y, -2.0f);
  const pair p = value(zoo->call<&zoo_api::mix>(pair{40, 1.5f}, std::int8_t{-2}));
  EXPECT_EQ(p.a, 38);
  EXPECT_FLOAT_EQ(p.b, -3.0f);
  const dpair d = value(zoo->call<&zoo_api::dmix>(dpair{2.5, 41}, 4.0));
  EXPECT_DOUBLE_EQ(d.x, 10.0);
  EXPECT_EQ(d.n, 42);
  const big_rec b = value(zoo->call<&zoo_api::scale_big>(big_rec{{1.5, 3}, {12, 200}, -2.0, 9}, 2.0));
  EXPECT_DOUBLE_EQ(b.d.x, 3.0);
  EXPECT_EQ(b.d.n, 3);
  EXPECT_EQ(b.in.s, -12);
  EXPECT_EQ(b.in.c, 200);
  EXPECT_DOUBLE_EQ(b.w, -4.0);
  EXPECT_EQ(b.tag, 10u);
}

TEST_F(Zoo, NarrowIntegersBoolsAndEnums) {
  EXPECT_EQ(value(zoo->call<&zoo_api::neg_u8>(std::int8_t{5})), 251);
  EXPECT_EQ(value(zoo->call<&zoo_api::half>(std::int16_t{-300})), -150);
  EXPECT_TRUE(value(zoo->call<&zoo_api::is_even>(std::int64_t{1} << 40)));
  EXPECT_FALSE(value(zoo->call<&zoo_api::is_even>(std::int64_t{-7})));
  EXPECT_EQ(value(zoo->call<&zoo_api::next_color>(BLUE)), RED);
}

TEST_F(Zoo, ManyArgumentsSpillToTheStack) {
  const double r = value(zoo->call<&zoo_api::many>(std::int8_t{-1}, std::uint16_t{2}, 3, std::int64_t{4}, std::uint64_t{5}, 6,
                                                   7, 8, 0.5, 0.25f, 0.125, 9));
  EXPECT_DOUBLE_EQ(r, -1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 0.5 + 0.25 + 0.125 + 9);
}

TEST_F(Zoo, StringsAndNullStringsComeBack) {
  auto one = zoo->call<&zoo_api::name_of>(1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->unverified_value_i_trust_it(), std::optional<std::string>("one"));
  auto none = zoo->call<&zoo_api::name_of>(7);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->unverified_value_i_trust_it().has_value());
}

vec2 zoo_mirror(vec2 v) { return {v.y, v.x}; }
int zoo_fill(std::uint8_t* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(i ^ 0x5a);
  return static_cast<int>(n);
}
double zoo_avg(const double* xs, std::size_t n) {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) s += xs[i];
  return n ? s / static_cast<double>(n) : 0;
}
const char* zoo_greet(const char* who) {
  static std::string s;
  s = std::string("hello, ") + who;
  return s.c_str();
}
big_rec zoo_twice(big_rec r) {
  r.d.x *= 2;
  r.d.n *= 2;
  r.in.s = static_cast<std::int16_t>(r.in.s * 2);
  r.in.c = static_cast<std::uint8_t>(r.in.c * 2);
  r.w *= 2;
  r.tag *= 2;
  return r;
}

TEST_F(Zoo, HostServicesTakeAndReturnEveryKind) {
  static const zoo_host host{zoo_mirror, zoo_fill, zoo_avg, zoo_greet, zoo_twice};
  const long bits = value(zoo->call<&zoo_api::use_host>(&host));
  EXPECT_EQ(bits, 31) << "failed checks (bit set = passed): " << bits;
}

TEST_F(Zoo, AMissingHostServiceIsAViolation) {
  static const zoo_host partial{zoo_mirror, zoo_fill, nullptr, zoo_greet, zoo_twice};
  auto r = zoo->call<&zoo_api::use_host>(&partial);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ward::Errc::violation) << r.error().message();
  EXPECT_NE(r.error().detail.find("zoo_host::avg"), std::string::npos) << r.error().detail;
}

}  // namespace

namespace {

TEST_F(Zoo, HostHandlesAreCheckedWhenTheHostPassesThem) {
  auto h = zoo->domain().handles().grant(std::make_shared<ZooObject>(), ward::rights::read);
  ASSERT_TRUE(h);
  auto ok = zoo->call<&zoo_api::take_handle>(*h);
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->unverified_value_i_trust_it(), *h + 1);
  // A value the table never issued: the host's mistake, reported as misuse; the domain lives.
  auto bad = zoo->call<&zoo_api::take_handle>(*h + 1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ward::Errc::misuse);
  EXPECT_NE(bad.error().detail.find("bad handle"), std::string::npos);
  // Missing right.
  auto wo = zoo->domain().handles().grant(std::make_shared<ZooObject>(), ward::rights::write);
  ASSERT_TRUE(wo);
  auto noright = zoo->call<&zoo_api::take_handle>(*wo);
  ASSERT_FALSE(noright);
  EXPECT_NE(noright.error().detail.find("right"), std::string::npos);
  EXPECT_TRUE(zoo->domain().alive());
}

}  // namespace
