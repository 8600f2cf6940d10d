// The backend conformance suite: what every ward::Domain backend must do, written once and run
// against each backend. A backend's test file defines two macros and includes this file:
//
//   #define WARD_CONFORMANCE_BACKEND Process                      // suite: Conformance_Process
//   #define WARD_CONFORMANCE_STARTER (&ward::ProcessDomain::start) // its ward::Starter
//   #include "backend/conformance_suite.inc.cc"
//
// The suite speaks only the backend-neutral surface: Instance<Api>::load with the starter, the
// typed calls, and ward::Domain's interface (alive, failure, kill, heartbeat, handles, grants).
// It never names a backend's class, process or memory. Rows are grouped by capability:
// parameters host -> extension, extension -> host (through a host service table), results,
// handles, failures, nesting, liveness and objects, grants.
//
// Recovery runs through the Supervisor, which starts every instance (first and restarted) on the
// same backend.
//
// Plugins: the example plugins (examples/plugins, declarations in examples/hosts/interfaces.h),
// plus conform.c for the kinds no example uses (declared below, where this host needs it).
#ifndef WARD_CONFORMANCE_BACKEND
#error "define WARD_CONFORMANCE_BACKEND and WARD_CONFORMANCE_STARTER, then include this file"
#endif

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "conform.h"
#include "interfaces.h"
#include "kv_host.h"

struct ConformObject {
  int touched = 0;
};
template <>
struct ward::enum_range<shade> {
  static constexpr shade min = DIM, max = BRIGHT;
};
WARD_INTERFACE(conform_host, (pack), (echo, ward::cstring(0), ward::nullable(0), ward::returns_string),
               (mangle, ward::inout(0, 1), ward::nullable(0)),
               (touch, ward::handle<ConformObject>(0, ward::rights::write)));
WARD_INTERFACE(conform_api, (init, ward::services(0)), (pack), (relay_pack),
               (echo, ward::cstring(0), ward::nullable(0), ward::returns_string),
               (relay_echo, ward::cstring(0), ward::nullable(0), ward::returns_string),
               (mangle, ward::inout(0, 1), ward::nullable(0)), (scribble, ward::out(0, 1), ward::nullable(0)),
               (relay_mangle, ward::inout(0, 1), ward::nullable(0)),
               (give_back, ward::handle<ConformObject>(0, ward::rights::read),
                ward::returns_handle<ConformObject>(ward::rights::read)),
               (launder, ward::returns_handle<ConformObject>()), (relay_touch));

// conform.c's library shape: free functions bound by symbol, with the C shapes real libraries use.
WARD_CALLBACK(conform_row_fn, ward::user_data(0), ward::strings(2, 1));
WARD_LIBRARY(conform_lib,
             (conform_obj_new, ward::returns_opaque),
             (conform_obj_get, ward::opaque(0)),
             (conform_obj_free, ward::opaque(0)),
             (conform_obj_open, ward::out_opaque(1)),
             (conform_rows, ward::callback(1, 2)),
             (conform_text, ward::out(0, ward::deref(1)).filled(ward::deref(1)), ward::inout(1)),
             (conform_keep, ward::shared(0, 1), ward::replay_after_restart),
             (conform_sum_kept, ward::idempotent),
             (conform_sum_once, ward::inout(0, 1), ward::idempotent));

#define WARD_CONFORMANCE_CAT2(a, b) a##b
#define WARD_CONFORMANCE_CAT(a, b) WARD_CONFORMANCE_CAT2(a, b)
#define WARD_CONFORMANCE WARD_CONFORMANCE_CAT(Conformance_, WARD_CONFORMANCE_BACKEND)

namespace {

using namespace std::chrono_literals;
using ward::Errc;

// ---- helpers -------------------------------------------------------------------------------------
template <class Api>
std::optional<ward::Instance<Api>> load(const char* plugin, const char* entry, ward::Policy policy = ward::Policy()) {
  auto p = ward::Instance<Api>::load(std::string(WARD_PLUGIN_DIR) + "/lib" + plugin + ".so", entry, std::move(policy), {},
                                   WARD_CONFORMANCE_STARTER);
  EXPECT_TRUE(p) << p.error().message();
  if (!p) return std::nullopt;
  return std::move(*p);
}

ward::Policy policy(ward::Policy::Builder b) {
  auto p = b.build();
  EXPECT_TRUE(p) << p.error().message();
  return p ? *p : ward::Policy();
}

template <class T>
T value(const ward::Result<ward::Tainted<T>>& r) {
  EXPECT_TRUE(r) << r.error().message();
  return r ? r->unverified_value_i_trust_it() : T{};
}

template <class R>
ward::Error error(const R& r) {
  EXPECT_FALSE(r) << "the call succeeded";
  return r ? ward::Error{} : r.error();
}

// One of every width, at values a truncation or a wrong sign extension would change.
constexpr scalars kScalars{-100, 250, -30000, 65000, -2000000000, 4000000000u, -(std::int64_t{1} << 50) - 7,
                           (std::uint64_t{1} << 63) + 9, -0.375f, -2.5e300, true, BRIGHT};

// Field by field (the padding between them carries nothing).
auto fields(const scalars& s) {
  return std::tuple(s.i8, s.u8, s.i16, s.u16, s.i32, s.u32, s.i64, s.u64, s.f32, s.f64, s.flag, s.tone);
}

// The host services of conform.c, recording what reached the host.
struct Seen {
  std::optional<scalars> packed;
  std::optional<std::optional<std::string>> echoed;  // outer: called at all; inner: null
  std::vector<std::uint8_t> mangled;
  bool mangled_null = false;
  int touches = 0;
} g_seen;

scalars host_pack(CONFORM_SCALAR_PARAMS) {
  g_seen.packed = scalars{i8, u8, i16, u16, i32, u32, i64, u64, f32, f64, flag, tone};
  return *g_seen.packed;
}
const char* host_echo(const char* s) {
  static std::string answer;
  g_seen.echoed = s ? std::optional<std::string>(s) : std::nullopt;
  if (!s) return nullptr;
  answer = std::string("<") + s + ">";
  return answer.c_str();
}
long host_mangle(std::uint8_t* buf, std::size_t n) {
  g_seen.mangled_null = !buf;
  if (!buf) return -1;
  g_seen.mangled.assign(buf, buf + n);
  for (std::size_t i = 0; i < n; ++i) buf[i] = static_cast<std::uint8_t>(buf[i] + 1);
  return static_cast<long>(n);
}
long host_touch(std::uint64_t object) {
  // The crossing checked the handle; the service reaches the object through its caller's table.
  auto o = ward::Domain::calling()->handles().lookup<ConformObject>(object, ward::rights::write);
  if (!o) return -1;
  ++g_seen.touches;
  return ++(*o)->touched;
}
constexpr conform_host kConformHost{host_pack, host_echo, host_mangle, host_touch};

// conform.c in a fresh domain, given the host services above.
std::optional<ward::Instance<conform_api>> load_conform() {
  auto p = load<conform_api>("conform", "conform_entry");
  if (p) {
    EXPECT_EQ(value(p->call<&conform_api::init>(&kConformHost)), 0);
  }
  return p;
}

class WARD_CONFORMANCE : public ::testing::Test {
 protected:
  void SetUp() override {
    g_seen = {};
    conform = load_conform();
    ASSERT_TRUE(conform);
  }
  ward::Domain& domain() { return conform->domain(); }
  std::optional<ward::Instance<conform_api>> conform;
};

// A failed domain stays failed: alive() and failure() agree with the first cause, and every later
// call fails at once with that kind, marked `earlier` (it never reached the extension).
void expect_failed_for_good(ward::Instance<probe_api>& p, Errc kind) {
  EXPECT_FALSE(p.domain().alive());
  ASSERT_TRUE(p.domain().failure());
  EXPECT_EQ(p.domain().failure()->kind, kind) << p.domain().failure()->message();
  for (int i = 0; i < 2; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const ward::Error e = error(p.call<&probe_api::run>(0L));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, p.domain().policy().timeout());
    EXPECT_EQ(e.kind, kind) << e.message();
    EXPECT_TRUE(e.earlier) << e.message();
  }
}

// A probe plugin (examples/plugins/probe.h), after checking that it works: run(0) behaves in
// every one; run(1) misbehaves as the plugin's name says.
std::optional<ward::Instance<probe_api>> load_probe(const char* plugin) {
  auto p = load<probe_api>(plugin, "probe_entry", policy(ward::Policy::builder().timeout(500ms)));
  if (p) {
    EXPECT_EQ(value(p->call<&probe_api::run>(0L)), 1);
    EXPECT_TRUE(p->domain().alive());
    EXPECT_FALSE(p->domain().failure());
  }
  return p;
}

// ---- parameters, host -> extension ----------------------------------------------------------------
TEST_F(WARD_CONFORMANCE, ScalarsOfEveryWidthReachTheExtension) {
  const scalars& s = kScalars;
  EXPECT_EQ(fields(value(conform->call<&conform_api::pack>(s.i8, s.u8, s.i16, s.u16, s.i32, s.u32, s.i64, s.u64, s.f32,
                                                           s.f64, s.flag, s.tone))),
            fields(s));
}

TEST_F(WARD_CONFORMANCE, RecordsByValueOfEveryClassAndNested) {
  auto zoo = load<zoo_api>("abi_zoo", "zoo_entry");
  ASSERT_TRUE(zoo);
  // By the C ABI's classes: SSE; int and float sharing an INTEGER eightbyte; SSE + INTEGER;
  // nested records in memory (and kScalars, a mixed record of every scalar, elsewhere).
  const vec2 v = value(zoo->call<&zoo_api::add_vec>(vec2{-1e30f, 0.5f}, vec2{1e30f, 0.25f}));
  EXPECT_EQ(v.x, 0.0f);
  EXPECT_EQ(v.y, 0.75f);
  const pair m = value(zoo->call<&zoo_api::mix>(pair{INT32_MIN + 3, -0.5f}, std::int8_t{-3}));
  EXPECT_EQ(m.a, INT32_MIN);
  EXPECT_EQ(m.b, 1.5f);
  const dpair d = value(zoo->call<&zoo_api::dmix>(dpair{-0.5, INT64_MAX - 1}, -4.0));
  EXPECT_EQ(d.x, 2.0);
  EXPECT_EQ(d.n, INT64_MAX);
  const big_rec in{{0.75, INT64_MIN}, {-7, 255}, 8.0, UINT64_MAX - 1};
  const big_rec b = value(zoo->call<&zoo_api::scale_big>(in, -2.0));
  EXPECT_EQ(b.d.x, -1.5);
  EXPECT_EQ(b.d.n, INT64_MIN);
  EXPECT_EQ(b.in.s, 7);
  EXPECT_EQ(b.in.c, 255);
  EXPECT_EQ(b.w, -16.0);
  EXPECT_EQ(b.tag, UINT64_MAX);
}

TEST_F(WARD_CONFORMANCE, StringsIncludingEmptyAndNullableNull) {
  EXPECT_EQ(value(conform->call<&conform_api::echo>("conformance")), std::optional<std::string>("conformance"));
  EXPECT_EQ(value(conform->call<&conform_api::echo>("")), std::optional<std::string>(""));
  EXPECT_EQ(value(conform->call<&conform_api::echo>(nullptr)), std::nullopt);
  // A null where the declaration does not allow one is the host's mistake: refused, domain alive.
  auto text = load<textxform_api>("textxform", "textxform_entry");
  ASSERT_TRUE(text);
  EXPECT_EQ(error(text->call<&textxform_api::count_words>(nullptr)).kind, Errc::misuse);
  EXPECT_TRUE(text->domain().alive());
  EXPECT_EQ(value(text->call<&textxform_api::count_words>("still alive")), 2);
}

TEST_F(WARD_CONFORMANCE, BuffersInOutAndInoutWithCounts) {
  auto sum = load<checksum_api>("checksum", "checksum_entry");
  ASSERT_TRUE(sum);
  const auto* digits = reinterpret_cast<const std::uint8_t*>("123456789");
  EXPECT_EQ(value(sum->call<&checksum_api::crc32>(digits, std::size_t{9})), 0xCBF43926u);
  EXPECT_EQ(value(sum->call<&checksum_api::crc32>(digits, std::size_t{0})), 0u);  // zero count
  std::vector<std::uint8_t> buf(3000, 0x11);
  ASSERT_TRUE(sum->call<&checksum_api::fill_pattern>(buf.data(), buf.size(), std::uint8_t{7}));
  for (std::size_t i = 0; i < buf.size(); ++i) ASSERT_EQ(buf[i], static_cast<std::uint8_t>(7 + i * 31)) << i;
  ASSERT_TRUE(sum->call<&checksum_api::xor_inplace>(buf.data(), buf.size(), std::uint8_t{0xFF}));
  for (std::size_t i = 0; i < buf.size(); ++i) ASSERT_EQ(buf[i], static_cast<std::uint8_t>(~(7 + i * 31))) << i;
  // A null buffer with a count, undeclared nullable: the host's mistake, refused.
  EXPECT_EQ(error(sum->call<&checksum_api::crc32>(nullptr, std::size_t{4})).kind, Errc::misuse);
  EXPECT_TRUE(sum->domain().alive());
}

TEST_F(WARD_CONFORMANCE, ZeroCountAndNullableNullBuffers) {
  std::uint8_t b[4] = {9, 9, 9, 9};
  EXPECT_EQ(value(conform->call<&conform_api::scribble>(b, std::size_t{0}, 0)), 0);  // not null: 0, not -1
  EXPECT_EQ(value(conform->call<&conform_api::mangle>(b, std::size_t{0}, 0)), 0);
  EXPECT_EQ(b[0], 9);
  EXPECT_EQ(value(conform->call<&conform_api::scribble>(nullptr, std::size_t{0}, 0)), -1);  // the extension saw null
  EXPECT_EQ(value(conform->call<&conform_api::mangle>(nullptr, std::size_t{8}, 0)), -1);
  EXPECT_EQ(value(conform->call<&conform_api::scribble>(b, std::size_t{3}, 0)), 3);
  EXPECT_EQ(b[0], 1);
  EXPECT_EQ(b[2], 3);
  EXPECT_EQ(b[3], 9);  // past the count: not written back
}

TEST_F(WARD_CONFORMANCE, OutAndInoutDataUntouchedWhenTheCallFails) {
  std::uint8_t out[64], inout[64];
  std::memset(out, 0x5a, sizeof out);
  std::memset(inout, 0x5a, sizeof inout);
  // The extension writes both buffers fully, then crashes.
  EXPECT_EQ(error(conform->call<&conform_api::scribble>(out, sizeof out, 1)).kind, Errc::crashed);
  auto other = load_conform();
  ASSERT_TRUE(other);
  EXPECT_EQ(error(other->call<&conform_api::mangle>(inout, sizeof inout, 1)).kind, Errc::crashed);
  for (std::size_t i = 0; i < sizeof out; ++i) {
    ASSERT_EQ(out[i], 0x5a) << i;
    ASSERT_EQ(inout[i], 0x5a) << i;
  }
}

// ---- parameters, extension -> host (a host service table) ------------------------------------------
TEST_F(WARD_CONFORMANCE, ScalarsOfEveryWidthReachTheHost) {
  const scalars& s = kScalars;
  const scalars back = value(conform->call<&conform_api::relay_pack>(s.i8, s.u8, s.i16, s.u16, s.i32, s.u32, s.i64,
                                                                      s.u64, s.f32, s.f64, s.flag, s.tone));
  ASSERT_TRUE(g_seen.packed) << "the host service never ran";
  EXPECT_EQ(fields(*g_seen.packed), fields(s));
  EXPECT_EQ(fields(back), fields(s));
}

TEST_F(WARD_CONFORMANCE, StringsToTheHostAndBackIncludingNull) {
  EXPECT_EQ(value(conform->call<&conform_api::relay_echo>("abc")), std::optional<std::string>("<abc>"));
  ASSERT_TRUE(g_seen.echoed) << "the host service never ran";
  EXPECT_EQ(*g_seen.echoed, std::optional<std::string>("abc"));
  g_seen.echoed.reset();
  EXPECT_EQ(value(conform->call<&conform_api::relay_echo>(nullptr)), std::nullopt);
  ASSERT_TRUE(g_seen.echoed) << "the host service never ran";
  EXPECT_EQ(*g_seen.echoed, std::nullopt);
}

TEST_F(WARD_CONFORMANCE, InoutDataThroughAHostService) {
  std::uint8_t b[5] = {10, 20, 30, 40, 50};
  EXPECT_EQ(value(conform->call<&conform_api::relay_mangle>(b, std::size_t{4})), 4);
  EXPECT_EQ(g_seen.mangled, (std::vector<std::uint8_t>{10, 20, 30, 40}));
  EXPECT_EQ(b[0], 11);
  EXPECT_EQ(b[3], 41);
  EXPECT_EQ(b[4], 50);
  EXPECT_EQ(value(conform->call<&conform_api::relay_mangle>(b, std::size_t{0})), 0);
  EXPECT_FALSE(g_seen.mangled_null);
  EXPECT_EQ(value(conform->call<&conform_api::relay_mangle>(nullptr, std::size_t{0})), -1);
  EXPECT_TRUE(g_seen.mangled_null);
}

TEST_F(WARD_CONFORMANCE, ServiceTablesCarryRecordsBuffersAndStrings) {
  auto zoo = load<zoo_api>("abi_zoo", "zoo_entry");
  ASSERT_TRUE(zoo);
  static const zoo_host host{
      [](vec2 v) { return vec2{v.y, v.x}; },
      [](std::uint8_t* out, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint8_t>(i ^ 0x5a);
        return static_cast<int>(n);
      },
      [](const double* xs, std::size_t n) { return n == 4 ? (xs[0] + xs[1] + xs[2] + xs[3]) / 4 : -1.0; },
      [](const char* who) { return std::strcmp(who, "zoo") == 0 ? "hello, zoo" : "?"; },
      [](big_rec r) {
        const inner twice{static_cast<std::int16_t>(r.in.s * 2), static_cast<std::uint8_t>(r.in.c * 2)};
        return big_rec{{r.d.x * 2, r.d.n * 2}, twice, r.w * 2, r.tag * 2};
      }};
  // One bit per service whose answer the extension found right (abi_zoo.c, use_host).
  EXPECT_EQ(value(zoo->call<&zoo_api::use_host>(&host)), 31);
}

// ---- results --------------------------------------------------------------------------------------
TEST_F(WARD_CONFORMANCE, ResultsOfEveryKind) {
  auto zoo = load<zoo_api>("abi_zoo", "zoo_entry");
  ASSERT_TRUE(zoo);
  // Scalars, narrow ones at values a wrong extension to 64 bits would change.
  EXPECT_EQ(value(zoo->call<&zoo_api::neg_u8>(std::int8_t{-128})), 128);
  EXPECT_EQ(value(zoo->call<&zoo_api::half>(std::int16_t{INT16_MIN})), -16384);
  EXPECT_TRUE(value(zoo->call<&zoo_api::is_even>(INT64_MIN)));
  EXPECT_EQ(value(zoo->call<&zoo_api::next_color>(GREEN)), BLUE);
  EXPECT_EQ(value(zoo->call<&zoo_api::name_of>(2)), std::optional<std::string>("two"));
  EXPECT_EQ(value(zoo->call<&zoo_api::name_of>(7)), std::nullopt);  // a null string
  std::uint8_t b[2] = {};
  auto sum = load<checksum_api>("checksum", "checksum_entry");
  ASSERT_TRUE(sum);
  EXPECT_TRUE(sum->call<&checksum_api::fill_pattern>(b, std::size_t{2}, std::uint8_t{1}));  // void
  EXPECT_EQ(b[1], 32);
  // Records: RecordsByValueOfEveryClassAndNested; handles: HostObjectsCrossAsCheckedHandles.
}

// ---- handles ------------------------------------------------------------------------------------------
struct OtherObject {};

TEST_F(WARD_CONFORMANCE, HostObjectsCrossAsCheckedHandles) {
  auto obj = std::make_shared<ConformObject>();
  auto rw = domain().handles().grant(obj, ward::rights::read | ward::rights::write);
  auto ro = domain().handles().grant(obj, ward::rights::read);
  auto other = domain().handles().grant(std::make_shared<OtherObject>(), ward::rights::all);
  ASSERT_TRUE(rw && ro && other);
  // Host -> extension and back as a result, checked both ways.
  EXPECT_EQ(value(conform->call<&conform_api::give_back>(*rw)), *rw);
  EXPECT_EQ(value(conform->call<&conform_api::launder>(*ro)), *ro);
  // The host's mistakes (wrong type, missing right, never issued) are refused before crossing.
  EXPECT_EQ(error(conform->call<&conform_api::give_back>(*other)).kind, Errc::misuse);
  auto wo = domain().handles().grant(obj, ward::rights::write);
  ASSERT_TRUE(wo);
  EXPECT_EQ(error(conform->call<&conform_api::give_back>(*wo)).kind, Errc::misuse);
  EXPECT_EQ(error(conform->call<&conform_api::give_back>(*rw ^ 1)).kind, Errc::misuse);
  EXPECT_TRUE(domain().alive());
  // Extension -> host: the service receives the object.
  EXPECT_EQ(value(conform->call<&conform_api::relay_touch>(*rw)), 1);
  EXPECT_EQ(obj->touched, 1);
}

TEST_F(WARD_CONFORMANCE, AReturnedValueThatIsNotAHandleIsAViolation) {
  auto other = domain().handles().grant(std::make_shared<OtherObject>(), ward::rights::all);
  ASSERT_TRUE(other);
  EXPECT_EQ(error(conform->call<&conform_api::launder>(*other)).kind, Errc::violation);
  EXPECT_FALSE(domain().alive());
}

TEST_F(WARD_CONFORMANCE, AHandleOfTheWrongTypeOrRightToAServiceIsAViolation) {
  auto obj = std::make_shared<ConformObject>();
  auto ro = domain().handles().grant(obj, ward::rights::read);  // touch needs write
  ASSERT_TRUE(ro);
  EXPECT_EQ(error(conform->call<&conform_api::relay_touch>(*ro)).kind, Errc::violation);
  EXPECT_FALSE(domain().alive());
  auto second = load_conform();
  ASSERT_TRUE(second);
  auto other = second->domain().handles().grant(std::make_shared<OtherObject>(), ward::rights::all);
  ASSERT_TRUE(other);
  EXPECT_EQ(error(second->call<&conform_api::relay_touch>(*other)).kind, Errc::violation);
  EXPECT_FALSE(second->domain().alive());
  EXPECT_EQ(g_seen.touches, 0);  // the service never ran
}

// ---- failures ---------------------------------------------------------------------------------------
TEST_F(WARD_CONFORMANCE, ACrashOrAForbiddenSystemCallIsReportedAsSuch) {
  for (auto [plugin, kind] : {std::pair{"crash_segv", Errc::crashed}, std::pair{"syscall_open", Errc::violation}}) {
    SCOPED_TRACE(plugin);
    auto p = load_probe(plugin);
    ASSERT_TRUE(p);
    const ward::Error e = error(p->call<&probe_api::run>(1L));
    EXPECT_EQ(e.kind, kind) << e.message();
    EXPECT_FALSE(e.earlier);
    expect_failed_for_good(*p, kind);
  }
}

TEST_F(WARD_CONFORMANCE, AHangIsHungOnceTheTimeoutHasPassed) {
  auto p = load_probe("hang_loop");
  ASSERT_TRUE(p);
  const auto t0 = std::chrono::steady_clock::now();
  const ward::Error e = error(p->call<&probe_api::run>(1L));
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(e.kind, Errc::hung) << e.message();
  EXPECT_FALSE(e.earlier);
  EXPECT_GE(waited, p->domain().policy().timeout());
  EXPECT_LT(waited, p->domain().policy().timeout() + 10s);  // generous: a loaded machine
  expect_failed_for_good(*p, Errc::hung);
}

TEST_F(WARD_CONFORMANCE, KilledFromOutsideTheNextCallFails) {
  auto p = load_probe("probe_ok");
  ASSERT_TRUE(p);
  p->domain().kill();
  EXPECT_EQ(error(p->call<&probe_api::run>(0L)).kind, Errc::crashed);
  expect_failed_for_good(*p, Errc::crashed);
}

// ---- nesting ---------------------------------------------------------------------------------------
// device_api::log_echo calls the host's log, which calls log_echo again, until `g_nest.stop`
// deep or a call fails.
struct Nest {
  ward::Instance<device_api>* dev = nullptr;
  int depth = 0, deepest = 0, stop = 0;
  std::optional<ward::Error> failed;
} g_nest;

void nesting_log(const char*) {
  g_nest.deepest = std::max(g_nest.deepest, ++g_nest.depth);
  if (g_nest.depth < g_nest.stop && !g_nest.failed) {
    auto r = g_nest.dev->call<&device_api::log_echo>("deeper", 1L);
    if (!r) g_nest.failed = r.error();
  }
  --g_nest.depth;
}

void nest(ward::Instance<device_api>& dev, int stop) {
  static constexpr device_host host{nesting_log, [] { return std::uint64_t{1}; }};
  ASSERT_TRUE(dev.call<&device_api::init>(&host));
  g_nest = {&dev, 0, 0, stop, {}};
  EXPECT_EQ(value(dev.call<&device_api::log_echo>("start", 1L)), 1);
  EXPECT_TRUE(dev.domain().alive());
  EXPECT_EQ(value(dev.call<&device_api::ping>()), 0);  // the domain is usable afterwards
}

TEST_F(WARD_CONFORMANCE, AHostServiceMayCallBackIntoTheSameDomain) {
  auto dev = load<device_api>("device", "device_entry");
  ASSERT_TRUE(dev);
  nest(*dev, 6);
  EXPECT_FALSE(g_nest.failed) << g_nest.failed->message();
  EXPECT_EQ(g_nest.deepest, 6);
}

TEST_F(WARD_CONFORMANCE, NestingPastMaxNestingIsALimit) {
  auto dev = load<device_api>("device", "device_entry", policy(ward::Policy::builder().max_nesting(4)));
  ASSERT_TRUE(dev);
  nest(*dev, 100);
  ASSERT_TRUE(g_nest.failed);
  EXPECT_EQ(g_nest.failed->kind, Errc::limit) << g_nest.failed->message();
  EXPECT_EQ(g_nest.deepest, 4);  // calls 1..4 ran, each calling the host's log once
}

// ---- liveness and objects -----------------------------------------------------------------------
TEST_F(WARD_CONFORMANCE, AnIdleDomainAnswersTheHeartbeat) {
  auto hb = domain().heartbeat(2s);
  ASSERT_TRUE(hb) << hb.error().message();
  EXPECT_TRUE(*hb);
  domain().kill();
  EXPECT_FALSE(domain().heartbeat(2s));
}

TEST_F(WARD_CONFORMANCE, GrantedObjectsAreReleasedOnceWhenTheDomainGoes) {
  // Shared with the hooks: they may outlive this scope if an assertion returns early.
  auto released = std::make_shared<std::pair<int, int>>();
  auto a = domain().handles().grant(std::make_shared<ConformObject>(), ward::rights::all,
                                    [released](ConformObject&) { ++released->first; });
  auto b = domain().handles().grant(std::make_shared<ConformObject>(), ward::rights::all,
                                    [released](ConformObject&) { ++released->second; });
  ASSERT_TRUE(a && b);
  ASSERT_EQ(value(conform->call<&conform_api::relay_touch>(*a)), 1);  // in use by the extension
  ASSERT_TRUE(domain().handles().close(*b));
  EXPECT_EQ(*released, std::make_pair(0, 1));
  conform.reset();
  EXPECT_EQ(*released, std::make_pair(1, 1));
}

// ---- recovery -------------------------------------------------------------------------------------
// A supervised kv store on this backend: state set by replayed calls and the extension's own
// handles (table ids) survive a restart; the host objects the failed instance held are released.
class WARD_CONFORMANCE_CAT(WARD_CONFORMANCE, _Recovery) : public ::testing::Test {
 protected:
  void SetUp() override {
    kvhost::live_buffers = 0;
    sup.emplace(ward::RestartPolicy{.max_restarts = 5, .window = 10s});
    auto e = sup->load<kv_api>(std::string(WARD_PLUGIN_DIR) + "/libkv.so", "kv_entry", ward::Policy(), {},
                               WARD_CONFORMANCE_STARTER);
    ASSERT_TRUE(e) << e.error().message();
    kv = std::move(*e);
    ASSERT_TRUE(kv->call<&kv_api::init>(&kvhost::table));
    auto t = kv->call<&kv_api::open_table>("conformance");
    ASSERT_TRUE(t) << t.error().message();
    table = t->unverified_value_i_trust_it();
    const std::uint8_t v[3] = {5, 6, 7};
    ASSERT_TRUE(kv->call<&kv_api::put>(table, 1u, v, sizeof v));
  }
  void TearDown() override {
    kv.reset();
    EXPECT_EQ(kvhost::live_buffers.load(), 0) << "host objects outlived the extension";
  }
  void expect_state() {
    std::uint8_t out[8] = {};
    auto g = kv->call<&kv_api::get>(table, 1u, out, sizeof out);
    ASSERT_TRUE(g) << g.error().message();
    EXPECT_EQ(g->unverified_value_i_trust_it(), 3);
    EXPECT_EQ(out[0], 5);
    EXPECT_EQ(out[2], 7);
  }
  std::optional<ward::Supervisor> sup;
  std::unique_ptr<ward::Extension<kv_api>> kv;
  std::uint64_t table = 0;
};

TEST_F(WARD_CONFORMANCE_CAT(WARD_CONFORMANCE, _Recovery), KilledItComesBackWithItsStateAndHandles) {
  kv->kill();
  expect_state();  // get is idempotent: recovered, replayed (init, open_table, put), retried
  const auto st = kv->stats();
  EXPECT_EQ(st.restarts, 1u);
  EXPECT_EQ(st.replayed, 3u);
  EXPECT_TRUE(kv->domain().alive());
}

TEST_F(WARD_CONFORMANCE_CAT(WARD_CONFORMANCE, _Recovery), ACallThatCrashedItFailsOnceThenCallsWork) {
  ASSERT_TRUE(kv->call<&kv_api::inject>(KV_FAULT_SEGV));
  const std::uint8_t v[1] = {9};
  auto r = kv->call<&kv_api::put>(table, 2u, v, sizeof v);  // crashes; not idempotent: its error
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Errc::crashed) << r.error().message();
  expect_state();
  std::uint8_t out[8] = {};
  auto g = kv->call<&kv_api::get>(table, 2u, out, sizeof out);  // the failed put left nothing
  ASSERT_TRUE(g) << g.error().message();
  EXPECT_EQ(g->unverified_value_i_trust_it(), -2);
}

// ---- the library shape: free functions and the C shapes of real libraries ----------------------------
#define WARD_CONFORMANCE_LIB WARD_CONFORMANCE_CAT(WARD_CONFORMANCE, _Library)
std::optional<ward::Instance<conform_lib>> open_conform_lib() {
  auto p = ward::Instance<conform_lib>::open(std::string(WARD_PLUGIN_DIR) + "/libconform.so", ward::Policy(), {},
                                             WARD_CONFORMANCE_STARTER);
  EXPECT_TRUE(p) << p.error().message();
  if (!p) return std::nullopt;
  return std::move(*p);
}

TEST(WARD_CONFORMANCE_LIB, OpaquePointersCrossAsCheckedTokens) {
  auto lib = open_conform_lib();
  ASSERT_TRUE(lib);
  auto made = (*lib)->conform_obj_new(41);
  ASSERT_TRUE(made) << made.error().message();
  const ward::Opaque<conform_obj> obj = *made;
  EXPECT_EQ(value((*lib)->conform_obj_get(obj)), 41);
  conform_obj* opened = nullptr;  // a T ** out-parameter receives a token
  ASSERT_TRUE((*lib)->conform_obj_open(7, &opened));
  EXPECT_EQ(value((*lib)->conform_obj_get(opened)), 7);
  auto none = (*lib)->conform_obj_new(-1);  // NULL from the extension: a null token
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  // Anything the domain did not issue is refused before it is sent.
  EXPECT_EQ(error((*lib)->conform_obj_get(reinterpret_cast<conform_obj*>(obj.token() ^ 1))).kind, Errc::misuse);
  EXPECT_TRUE(lib->domain().alive());
  EXPECT_TRUE((*lib)->conform_obj_free(obj));
}

struct Rows {
  std::vector<std::vector<std::optional<std::string>>> seen;
};
int on_row(void* ud, int n, char** cells) {
  auto& r = *static_cast<Rows*>(ud);
  auto& row = r.seen.emplace_back();
  for (int i = 0; i < n; ++i) row.push_back(cells[i] ? std::optional<std::string>(cells[i]) : std::nullopt);
  return 10;
}

TEST(WARD_CONFORMANCE_LIB, CallbacksCarryUserDataAndStringArraysWithNulls) {
  auto lib = open_conform_lib();
  ASSERT_TRUE(lib);
  Rows rows;
  EXPECT_EQ(value((*lib)->conform_rows(3, &on_row, &rows)), 30);  // each result reached the library
  using Row = std::vector<std::optional<std::string>>;
  EXPECT_EQ(rows.seen, (std::vector<Row>{{"0", "x"}, {"1", std::nullopt}, {"2", "x"}}));
}

TEST(WARD_CONFORMANCE_LIB, ASizeBehindAPointerBoundsAndTrimsTheCopy) {
  auto lib = open_conform_lib();
  ASSERT_TRUE(lib);
  char buf[32];
  std::memset(buf, '#', sizeof buf);
  std::size_t len = 5;
  EXPECT_EQ(value((*lib)->conform_text(buf, &len)), 0);
  EXPECT_EQ(len, 5u);
  EXPECT_EQ(std::string(buf, 6), "confo#");  // only what was filled came back
  len = sizeof buf;
  EXPECT_EQ(value((*lib)->conform_text(buf, &len)), 0);
  EXPECT_EQ(std::string(buf, len), "conformance");
}

TEST(WARD_CONFORMANCE_LIB, SandboxMemoryIsKeptBetweenCalls) {
  auto lib = open_conform_lib();
  ASSERT_TRUE(lib);
  auto mem = lib->alloc<std::uint8_t>(64);
  ASSERT_TRUE(mem) << mem.error().message();
  std::fill_n(mem->host_ptr(), 64, 2);
  ASSERT_TRUE((*lib)->conform_keep(*mem, 64));
  EXPECT_EQ(value((*lib)->conform_sum_kept()), 128);
  std::fill_n(mem->host_ptr(), 64, 3);  // the library sees the host's writes in place
  EXPECT_EQ(value((*lib)->conform_sum_kept()), 192);
  std::uint8_t host[64] = {};
  EXPECT_EQ(error((*lib)->conform_keep(host, 64)).kind, Errc::misuse);  // shared: sandbox memory only
}

// Under a Supervisor the kept memory survives a restart with its contents and its address: the
// replayed conform_keep hands the fresh instance the same pointer.
TEST(WARD_CONFORMANCE_LIB, UnderASupervisorSandboxMemorySurvivesARestartAtItsAddress) {
  ward::Supervisor sup(ward::RestartPolicy{.max_restarts = 5, .window = 10s});
  auto lib = sup.open<conform_lib>(std::string(WARD_PLUGIN_DIR) + "/libconform.so", ward::Policy(), {},
                                   WARD_CONFORMANCE_STARTER);
  ASSERT_TRUE(lib) << lib.error().message();
  auto mem = (*lib)->alloc<std::uint8_t>(16);
  ASSERT_TRUE(mem) << mem.error().message();
  std::fill_n(mem->host_ptr(), 16, 5);
  ASSERT_TRUE((**lib)->conform_keep(*mem, 16));
  const auto where = mem->in_extension();
  (*lib)->kill();
  EXPECT_EQ(value((**lib)->conform_sum_kept()), 80);
  EXPECT_EQ(mem->in_extension(), where);
  EXPECT_EQ((*lib)->stats().restarts, 1u);
}

// A call that crashes the instance while it holds a buffer in sandbox memory is retried in the
// fresh instance with the same allocation, at that instance's address (the failed window is gone).
TEST(WARD_CONFORMANCE_LIB, UnderASupervisorARetryPassesSandboxMemoryAtItsNewAddress) {
  ward::Supervisor sup(ward::RestartPolicy{.max_restarts = 5, .window = 10s});
  auto lib = sup.open<conform_lib>(std::string(WARD_PLUGIN_DIR) + "/libconform.so", ward::Policy(), {},
                                   WARD_CONFORMANCE_STARTER);
  ASSERT_TRUE(lib) << lib.error().message();
  auto mem = (*lib)->alloc<std::uint8_t>(8);
  ASSERT_TRUE(mem) << mem.error().message();
  std::fill_n(mem->host_ptr(), 8, 3);
  (void)mem->write(0, 1);  // the first attempt clears it and crashes
  EXPECT_EQ(value((**lib)->conform_sum_once(*mem, 8)), 21);
  EXPECT_EQ((*lib)->stats().restarts, 1u);
  EXPECT_EQ((*lib)->stats().retried, 1u);
}

// ---- grants -------------------------------------------------------------------------------------
TEST_F(WARD_CONFORMANCE, GrantedServicesFollowThePolicy) {
  auto all = load<device_api>("device", "device_entry");
  auto one = load<device_api>("device", "device_entry", policy(ward::Policy::builder().grant("device_host::now_ns")));
  ASSERT_TRUE(all && one);
  EXPECT_EQ(all->domain().granted_services(), (std::vector<std::string>{"device_host::log", "device_host::now_ns"}));
  EXPECT_EQ(one->domain().granted_services(), std::vector<std::string>{"device_host::now_ns"});
}

int g_logged = 0;

TEST_F(WARD_CONFORMANCE, AnUngrantedServiceCallIsAViolation) {
  auto p = load<probe_api>("busy_log", "probe_entry", policy(ward::Policy::builder().grant_none()));
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->domain().granted_services().empty());
  static constexpr probe_host host{[](const char*) { ++g_logged; }};
  ASSERT_TRUE(p->call<&probe_api::init>(&host));
  g_logged = 0;
  EXPECT_EQ(error(p->call<&probe_api::run>(3L)).kind, Errc::violation);
  EXPECT_EQ(g_logged, 0);  // the service never ran
  EXPECT_FALSE(p->domain().alive());
}

}  // namespace
