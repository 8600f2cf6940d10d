// Values with invalid bit patterns from a hostile extension (issue 8, finding 6): a bool whose
// byte is neither 0 nor 1, an enum outside its declared range. Wherever extension data becomes a
// host object (a result by value, an out or inout buffer, a record, buffer or scalar passed to a
// host service) a bool arrives as 0 or 1 and an out-of-range enum is refused. The bytes are read
// with memcpy, so the checks hold without sanitizers (a bool load of byte 2 is undefined; the
// review's `names[v.ok]` read past a two-element array).
#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "hostile_values.h"
#include "ward/ward.h"

template <>
struct ward::enum_range<hv_mode> {
  static constexpr hv_mode min = HV_OFF, max = HV_AUTO;
};
WARD_INTERFACE(hv_host, (take), (take_many, ward::in(0, 1)), (update, ward::inout(0)), (take_mode), (take_flag),
               (take_flags, ward::in(0, 1)));
WARD_INTERFACE(hv_api, (configure), (get), (fill, ward::out(0, 1)), (bump, ward::inout(0)), (get_mode), (get_flag),
               (fill_flags, ward::out(0, 1)), (call_host, ward::services(0)));

namespace {

std::string plugin() { return std::string(WARD_PLUGIN_DIR) + "/hostile/libiface_bad_bool.so"; }

// The byte behind a bool, read without a bool load.
unsigned byte_of(const bool& b) {
  unsigned char c;
  std::memcpy(&c, &b, 1);
  return c;
}

// Every bool in a record: the bytes the host would load.
std::vector<unsigned> bool_bytes(const hv_rec& r) { return {byte_of(r.ok)}; }
std::vector<unsigned> bool_bytes(const hv_outer& o) {
  return {byte_of(o.rec.ok), byte_of(o.bits[0]), byte_of(o.bits[1]), byte_of(o.bits[2]), byte_of(o.last)};
}

// What the host services saw (they run on the calling thread, inside the call).
struct Seen {
  std::vector<unsigned> bytes;
  std::optional<int> mode;
  int calls = 0;
} g_seen;

void note(const std::vector<unsigned>& b) {
  g_seen.bytes.insert(g_seen.bytes.end(), b.begin(), b.end());
  ++g_seen.calls;
}

constexpr hv_host kHost{
    [](hv_rec r) { note(bool_bytes(r)); },
    [](const hv_outer* v, std::size_t n) {
      for (std::size_t i = 0; i < n; ++i) note(bool_bytes(v[i]));
    },
    [](hv_outer* v) {
      note(bool_bytes(*v));
      v->rec.id = 100;
    },
    [](hv_mode m) {
      int raw;
      std::memcpy(&raw, &m, sizeof raw);
      g_seen.mode = raw;
      ++g_seen.calls;
    },
    [](bool b) { note({byte_of(b)}); },
    [](const bool* v, std::size_t n) {
      for (std::size_t i = 0; i < n; ++i) note({byte_of(v[i])});
    },
};

template <class Param>
struct HostileValues : ::testing::TestWithParam<Param> {
  void SetUp() override {
    g_seen = {};
    auto pol = ward::Policy::builder().grant("hv_host").build();
    ASSERT_TRUE(pol);
    auto p = ward::Instance<hv_api>::load(plugin(), "hv_entry", *pol);
    ASSERT_TRUE(p) << p.error().message();
    hv.emplace(std::move(*p));
  }
  void configure(std::uint8_t bool_byte, int mode) {
    ASSERT_TRUE(hv->call<&hv_api::configure>(bool_byte, std::int32_t{mode}));
  }
  std::optional<ward::Instance<hv_api>> hv;
};

struct InvalidValues : HostileValues<std::uint8_t> {
  // The byte every bool must arrive as: any non-zero byte is true.
  unsigned want() const { return GetParam() != 0 ? 1u : 0u; }
};

// ---- bools: normalised on every path ----------------------------------------------------------

TEST_P(InvalidValues, ARecordReturnedByValueCarriesOnlyValidBools) {
  configure(GetParam(), HV_ON);
  auto r = hv->call<&hv_api::get>();
  ASSERT_TRUE(r) << r.error().message();
  const hv_rec v = r->unverified_value_i_trust_it();
  EXPECT_EQ(v.id, 7);
  EXPECT_EQ(bool_bytes(v), std::vector<unsigned>{want()});
}

TEST_P(InvalidValues, AnOutBufferOfRecordsCarriesOnlyValidBools) {
  configure(GetParam(), HV_ON);
  hv_outer buf[4];
  auto r = hv->call<&hv_api::fill>(buf, std::size_t{4});
  ASSERT_TRUE(r) << r.error().message();
  for (const hv_outer& o : buf) {
    EXPECT_EQ(bool_bytes(o), std::vector<unsigned>(5, want()));
    EXPECT_EQ(o.tag, 0x7f);  // the bytes around the bools are the extension's, untouched
  }
}

TEST_P(InvalidValues, AnInoutRecordCarriesOnlyValidBools) {
  configure(GetParam(), HV_ON);
  hv_outer one{};
  one.rec.id = 41;
  auto r = hv->call<&hv_api::bump>(&one);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(one.rec.id, 42);
  EXPECT_EQ(bool_bytes(one), std::vector<unsigned>(5, want()));
}

TEST_P(InvalidValues, AnOutBufferOfBoolsCarriesOnlyValidBools) {
  configure(GetParam(), HV_ON);
  bool flags[5];
  auto r = hv->call<&hv_api::fill_flags>(flags, std::size_t{5});
  ASSERT_TRUE(r) << r.error().message();
  for (const bool& f : flags) EXPECT_EQ(byte_of(f), want());
}

TEST_P(InvalidValues, ABoolResultIsZeroOrOne) {
  configure(GetParam(), HV_ON);
  auto r = hv->call<&hv_api::get_flag>();
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(byte_of(r->unverified_value_i_trust_it()), want());
}

TEST_P(InvalidValues, HostServicesReceiveOnlyValidBools) {
  configure(GetParam(), HV_ON);
  // record by value, in buffer of 3 records, inout record, bool scalar, in buffer of 4 bools
  const std::size_t bools[] = {1, 15, 5, 1, 4};
  const int which[] = {0, 1, 2, 4, 5};
  for (std::size_t i = 0; i < std::size(which); ++i) {
    g_seen = {};
    auto r = hv->call<&hv_api::call_host>(&kHost, std::int32_t{which[i]});
    ASSERT_TRUE(r) << "service " << which[i] << ": " << r.error().message();
    EXPECT_EQ(g_seen.bytes, std::vector<unsigned>(bools[i], want())) << "service " << which[i];
  }
}

INSTANTIATE_TEST_SUITE_P(BoolBytes, InvalidValues, ::testing::Values(std::uint8_t{2}, std::uint8_t{0xff}, std::uint8_t{0}),
                         [](const auto& info) { return "byte_" + std::to_string(info.param); });

// ---- enums with a declared range: out-of-range values are refused -------------------------------

struct OutOfRangeEnums : HostileValues<int> {};

TEST_P(OutOfRangeEnums, AResultOrOutDataIsRefusedAsBadDataAndTheHostsObjectsAreUntouched) {
  configure(1, GetParam());
  auto rec = hv->call<&hv_api::get>();
  ASSERT_FALSE(rec);
  EXPECT_EQ(rec.error().kind, ward::Errc::bad_data) << rec.error().message();
  EXPECT_NE(rec.error().detail.find("enum"), std::string::npos) << rec.error().detail;
  auto mode = hv->call<&hv_api::get_mode>();
  ASSERT_FALSE(mode);
  EXPECT_EQ(mode.error().kind, ward::Errc::bad_data) << mode.error().message();

  hv_outer buf[2];
  std::memset(buf, 0x11, sizeof buf);
  auto fill = hv->call<&hv_api::fill>(buf, std::size_t{2});
  ASSERT_FALSE(fill);
  EXPECT_EQ(fill.error().kind, ward::Errc::bad_data) << fill.error().message();
  for (std::size_t i = 0; i < sizeof buf; ++i) ASSERT_EQ(reinterpret_cast<unsigned char*>(buf)[i], 0x11) << i;

  hv_outer one{};
  one.rec.id = 41;
  auto bump = hv->call<&hv_api::bump>(&one);
  ASSERT_FALSE(bump);
  EXPECT_EQ(one.rec.id, 41);

  // Refusing a value is not a failure of the extension: it still answers.
  configure(1, HV_AUTO);
  auto ok = hv->call<&hv_api::get>();
  ASSERT_TRUE(ok) << ok.error().message();
  EXPECT_EQ(ok->unverified_value_i_trust_it().mode, HV_AUTO);
}

TEST_P(OutOfRangeEnums, AHostServiceNeverRunsOnOneAndTheExtensionIsAViolator) {
  for (int which : {0, 1, 2, 3}) {
    SetUp();  // a violation ends the domain: a fresh one per service
    configure(1, GetParam());
    auto r = hv->call<&hv_api::call_host>(&kHost, std::int32_t{which});
    ASSERT_FALSE(r) << "service " << which;
    EXPECT_EQ(r.error().kind, ward::Errc::violation) << r.error().message();
    EXPECT_NE(r.error().detail.find("enum"), std::string::npos) << r.error().detail;
    EXPECT_EQ(g_seen.calls, 0) << "service " << which;
  }
}

// ---- the one check every path uses, on host objects ------------------------------------------

enum class level : std::uint8_t { low = 1, high = 3 };
enum class yes_no : bool { no, yes };
struct deep {
  level lv;
  struct {
    bool b[2][2];
    yes_no yn;
  } in[2];
};
union bytes4 {  // a union hiding a bool: refused
  bool flag;
  std::uint32_t n;
};
union raw4 {  // a union the host vouches for
  float f;
  std::uint32_t n;
};
struct with_bits {  // bit-fields around no bool: nothing to check
  unsigned kind : 3;
  unsigned more : 5;
  int n;
};
struct many_fields {
  std::uint64_t a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t;
  bool last;
};

}  // namespace

template <>
struct ward::enum_range<level> {
  static constexpr level min = level::low, max = level::high;
};
template <>
inline constexpr bool ward::all_bit_patterns_valid<raw4> = true;

namespace {

TEST(Sanitize, FindsEveryBoolAndRangedEnumInNestedRecordsAndArrays) {
  namespace d = ward::detail;
  static_assert(d::needs_check<deep> && d::may_refuse<deep> && d::checkable<deep>);
  static_assert(!d::checkable<bytes4> && d::checkable<raw4> && !d::needs_check<raw4>);
  static_assert(d::checkable<with_bits> && !d::needs_check<with_bits>);
  static_assert(d::checkable<many_fields> && d::needs_check<many_fields> && !d::may_refuse<many_fields>);
  static_assert(!d::needs_check<std::byte> && !d::needs_check<double[4]>);

  deep v;
  std::memset(&v, 0x02, sizeof v);  // every bool byte 2, lv = 2 (in range)
  ASSERT_TRUE(d::sanitize(v));
  const auto* raw = reinterpret_cast<const unsigned char*>(&v);
  for (std::size_t i = 0; i < sizeof v; ++i) EXPECT_LE(raw[i], i == offsetof(deep, lv) ? 2u : 1u) << "byte " << i;

  std::memset(&v, 0x04, sizeof v);  // lv = 4: above high
  EXPECT_FALSE(d::sanitize(v));
  std::memset(&v, 0x00, sizeof v);  // lv = 0: below low
  EXPECT_FALSE(d::sanitize(v));

  many_fields m;
  std::memset(&m, 0xff, sizeof m);
  ASSERT_TRUE(d::sanitize(m));
  EXPECT_EQ(byte_of(m.last), 1u);
  EXPECT_EQ(m.t, ~std::uint64_t{0});  // other fields untouched
}

INSTANTIATE_TEST_SUITE_P(Raw, OutOfRangeEnums, ::testing::Values(3, 7, -1, 0x7fffffff),
                         [](const auto& info) { return "raw_" + std::to_string(static_cast<unsigned>(info.param)); });

}  // namespace
