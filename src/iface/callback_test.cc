// Callbacks (iface/callback.h) and string arrays, end to end through a real child running
// callback_lib.c: a callback called many times during a call (sqlite3_exec's rows), registered
// by one call and run in a later one (set a handler, then parse), with NULL-terminated string
// arrays (SAX attributes), returning values that steer the library, calling back into the
// extension; and what a hostile library does with them.
#include <gtest/gtest.h>

#include <csignal>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "callback_lib.h"
#include "ward/iface/callback.h"
#include "ward/ward.h"

WARD_CALLBACK(cb_row_fn, ward::user_data(0), ward::strings(2, 1), ward::strings(3, 1), ward::nullable(2));
WARD_CALLBACK(cb_start_fn, ward::user_data(0), ward::cstring(1), ward::strings(2));
WARD_CALLBACK(cb_visit_fn, ward::user_data(0));
WARD_INTERFACE(cb_host, (log_argv, ward::strings(1, 0)));
WARD_INTERFACE(cb_api,
               (exec, ward::callback(1, 2)),
               (set_handler, ward::callback(0, 1)),
               (parse, ward::cstring(0)),
               (each, ward::callback(1, 2)),
               (sum, ward::callback(1, 2)),
               (twice),
               (peek, ward::callback(0, 1)),
               (relay_argv, ward::services(0)),
               (total_len, ward::strings(0)),
               (total_len_n, ward::strings(1, 0)),
               (forge, ward::callback(0, 1)),
               (cross_token, ward::callback(0, 1), ward::callback(2, 3)),
               (bad_rows, ward::callback(0, 1)),
               (bad_attrs));
// The same library as free functions (WARD_LIBRARY, bound by name in the child).
WARD_LIBRARY(cb_free, (cb_exec, ward::callback(1, 2)), (cb_each, ward::callback(1, 2)));

namespace {

using Strings = std::vector<std::optional<std::string>>;
using Lib = ward::Instance<cb_api>;

template <auto M>
using FnOf = std::tuple_element_t<ward::detail::index_of_fn<cb_api, M>(), ward::detail::fns_tuple<cb_api>>;

// Copies a NULL-terminated or counted array; records whether a counted one ends in NULL too.
template <class P>
Strings copy(P v, int n, bool* terminated = nullptr) {
  Strings s;
  for (int i = 0; n < 0 ? v[i] != nullptr : i < n; ++i) s.push_back(v[i] ? std::optional<std::string>(v[i]) : std::nullopt);
  if (terminated) *terminated = v[n < 0 ? s.size() : n] == nullptr;
  return s;
}

struct RowLog {
  std::vector<Strings> rows;
  Strings names;
  bool terminated = true;
  int stop_at = -1;  // return non-zero at this row
};
int on_row(void* ud, int n, char** values, char** names) {
  auto& log = *static_cast<RowLog*>(ud);
  bool t1 = false, t2 = false;
  log.rows.push_back(copy(values, n, &t1));
  log.names = copy(names, n, &t2);
  log.terminated = log.terminated && t1 && t2;
  return static_cast<int>(log.rows.size()) - 1 == log.stop_at ? 1 : 0;
}

struct Element {
  std::string name;
  Strings attrs;
};
void on_start(void* ud, const char* name, const char** attrs) {
  static_cast<std::vector<Element>*>(ud)->push_back({name, copy(attrs, -1)});
}

struct Visits {
  std::vector<int> seen;
  int stop_at = -1;
  Lib* lib = nullptr;  // set: call back into the extension
};
int on_visit(void* ud, int v) {
  auto& s = *static_cast<Visits*>(ud);
  s.seen.push_back(v);
  if (s.lib) {
    auto r = s.lib->call<&cb_api::twice>(v);
    return r ? r->unverified_value_i_trust_it() : -1000;
  }
  return v == s.stop_at ? 1 : 0;
}

Strings g_logged;
int log_argv(int argc, const char** argv) {
  bool terminated = false;
  g_logged = copy(argv, argc, &terminated);
  return terminated ? 42 : -1;
}

std::string plugin() { return std::string(WARD_PLUGIN_DIR) + "/libcallback_lib.so"; }

struct Callbacks : ::testing::Test {
  void SetUp() override {
    auto p = Lib::load(plugin(), "callback_lib_entry");
    ASSERT_TRUE(p) << p.error().message();
    lib.emplace(std::move(*p));
  }
  template <class T>
  static T value(const ward::Result<ward::Tainted<T>>& r) {
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? r->unverified_value_i_trust_it() : T{};
  }
  // The call failed with `kind`, and its message says `what`.
  template <class R>
  static void failed(const R& r, ward::Errc kind, const std::string& what) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, kind) << r.error().message();
    EXPECT_NE(r.error().message().find(what), std::string::npos) << r.error().message();
  }
  std::optional<Lib> lib;
};

TEST(CallbackSchema, KindsFollowTheDeclaration) {
  namespace s = ward::schema;
  using Exec = FnOf<&cb_api::exec>;
  EXPECT_EQ((ward::detail::param_desc<Exec, 1>().kind), s::Kind::callback);
  EXPECT_EQ((ward::detail::param_desc<Exec, 1>().table), (ward::detail::service_id<cb_api, ward::callback_table<cb_row_fn>>()));
  EXPECT_EQ((ward::detail::param_desc<Exec, 2>().kind), s::Kind::u64);  // the token
  EXPECT_EQ((ward::detail::param_desc<FnOf<&cb_api::total_len_n>, 1>().kind), s::Kind::strings);
  EXPECT_EQ((ward::detail::param_desc<FnOf<&cb_api::total_len_n>, 1>().count_arg), 0);
  EXPECT_EQ((ward::detail::param_desc<FnOf<&cb_api::total_len>, 0>().count_arg), 0xff);
}

TEST_F(Callbacks, CalledForEveryRowWithNullValues) {
  RowLog log;
  EXPECT_EQ(value(lib->call<&cb_api::exec>(5, &on_row, &log)), 5);
  ASSERT_EQ(log.rows.size(), 5u);
  EXPECT_EQ(log.names, (Strings{"id", "name", "note"}));
  EXPECT_EQ(log.rows[0], (Strings{"0", "row0", "even"}));
  EXPECT_EQ(log.rows[3], (Strings{"3", "row3", std::nullopt}));
  EXPECT_TRUE(log.terminated) << "the host's arrays end in NULL";
}

TEST_F(Callbacks, ResultsSteerTheLibrary) {
  RowLog log;
  log.stop_at = 1;
  EXPECT_EQ(value(lib->call<&cb_api::exec>(5, &on_row, &log)), 2);
  EXPECT_EQ(log.rows.size(), 2u);
  Visits v;
  v.stop_at = 3;
  EXPECT_EQ(value(lib->call<&cb_api::each>(10, &on_visit, &v)), 4);
  EXPECT_EQ(v.seen, (std::vector<int>{0, 1, 2, 3}));
}

TEST_F(Callbacks, RegisteredInOneCallCalledInLaterOnes) {
  std::vector<Element> els;
  ASSERT_TRUE(lib->call<&cb_api::set_handler>(&on_start, &els));
  EXPECT_EQ(value(lib->call<&cb_api::parse>("a x=1 y=two;b;c k=v")), 3);
  ASSERT_EQ(els.size(), 3u);
  EXPECT_EQ(els[0].name, "a");
  EXPECT_EQ(els[0].attrs, (Strings{"x", "1", "y", "two"}));
  EXPECT_TRUE(els[1].attrs.empty());
  EXPECT_EQ(els[2].attrs, (Strings{"k", "v"}));
  EXPECT_EQ(value(lib->call<&cb_api::parse>("d")), 1);
  EXPECT_EQ(els.size(), 4u);
}

TEST_F(Callbacks, CallBackIntoTheExtension) {
  Visits v;
  v.lib = &*lib;
  EXPECT_EQ(value(lib->call<&cb_api::sum>(5, &on_visit, &v)), 2 * (0 + 1 + 2 + 3 + 4));
  EXPECT_EQ(v.seen.size(), 5u);
}

TEST_F(Callbacks, TheExtensionSeesTokensNotHostPointers) {
  Visits a, b;
  const auto ta = value(lib->call<&cb_api::peek>(&on_visit, &a));
  EXPECT_NE(ta, 0u);
  EXPECT_NE(ta, reinterpret_cast<std::uintptr_t>(&a));
  EXPECT_EQ(value(lib->call<&cb_api::peek>(&on_visit, &a)), ta) << "the same pair, the same token";
  EXPECT_NE(value(lib->call<&cb_api::peek>(&on_visit, &b)), ta);
  failed(lib->call<&cb_api::peek>(nullptr, &a), ward::Errc::misuse, "null callback");
}

TEST_F(Callbacks, StringArraysBothWays) {
  const char* parts[] = {"ab", "cde", nullptr};
  EXPECT_EQ(value(lib->call<&cb_api::total_len>(parts)), 5);
  char a[] = "a", bb[] = "bb";
  char* counted[] = {a, nullptr, bb};
  EXPECT_EQ(value(lib->call<&cb_api::total_len_n>(3, counted)), 1 + 100 + 2);
  failed(lib->call<&cb_api::total_len_n>(-1, counted), ward::Errc::misuse, "negative");
  const cb_host host{&log_argv};
  EXPECT_EQ(value(lib->call<&cb_api::relay_argv>(&host)), 42);
  EXPECT_EQ(g_logged, (Strings{"alpha", std::nullopt, "gamma"}));
}

TEST_F(Callbacks, RegistrationsAreBounded) {
  std::vector<int> uds(ward::Domain::kMaxCallbacks + 1);
  std::vector<Element> els;
  ASSERT_TRUE(lib->call<&cb_api::set_handler>(&on_start, &els));
  for (std::size_t i = 1; i < ward::Domain::kMaxCallbacks; ++i)
    ASSERT_TRUE(lib->call<&cb_api::set_handler>(&on_start, &uds[i])) << i;
  failed(lib->call<&cb_api::set_handler>(&on_start, &uds[0]), ward::Errc::limit, "callbacks registered");
  // The refusal ends nothing: the registrations made stand.
  ASSERT_TRUE(lib->call<&cb_api::set_handler>(&on_start, &els));
  EXPECT_EQ(value(lib->call<&cb_api::parse>("a")), 1);
  EXPECT_EQ(els.size(), 1u);
}

TEST(CallbackLibrary, FreeFunctionsTakeCallbacksToo) {
  auto lib = ward::Instance<cb_free>::open(plugin());
  ASSERT_TRUE(lib) << lib.error().message();
  RowLog log;
  auto r = lib->call<&cb_free::cb_exec>(3, &on_row, &log);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->unverified_value_i_trust_it(), 3);
  EXPECT_EQ(log.rows.size(), 3u);
  Visits v;
  v.stop_at = 1;
  auto e = (*lib)->cb_each(5, &on_visit, &v);  // the call spelled like the direct one
  ASSERT_TRUE(e) << e.error().message();
  EXPECT_EQ(e->unverified_value_i_trust_it(), 2);
}

TEST(CallbackGrants, CallbacksNeedNoGrantAndAreNotServices) {
  auto pol = ward::Policy::builder().grant_none().build();
  ASSERT_TRUE(pol);
  auto lib = Lib::load(plugin(), "callback_lib_entry", *pol);
  ASSERT_TRUE(lib) << lib.error().message();
  EXPECT_TRUE(lib->domain().granted_services().empty());
  Visits v;
  auto r = lib->call<&cb_api::each>(3, &on_visit, &v);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(v.seen.size(), 3u);
}

// ---- hostile --------------------------------------------------------------------------------------
TEST_F(Callbacks, ForgedUserDataIsAViolation) {
  Visits v;
  for (int how : {0, 1}) {
    SetUp();  // a violation ends the domain: a fresh one per case
    failed(lib->call<&cb_api::forge>(&on_visit, &v, how), ward::Errc::violation, "no callback token");
    EXPECT_TRUE(v.seen.empty()) << "the host's callback never ran";
  }
}

TEST_F(Callbacks, AnotherCallbacksTokenIsAViolation) {
  Visits v;
  RowLog log;
  failed(lib->call<&cb_api::cross_token>(&on_visit, &v, &on_row, &log), ward::Errc::violation,
         "another callback type");
  EXPECT_TRUE(log.rows.empty());
}

TEST_F(Callbacks, NegativeRowCountIsAViolation) {
  RowLog log;
  failed(lib->call<&cb_api::bad_rows>(&on_row, &log, 1), ward::Errc::violation, "negative element count");
  EXPECT_TRUE(log.rows.empty());
}

TEST_F(Callbacks, WildOrUnterminatedArraysCrashTheExtension) {
  RowLog log;
  auto wild = lib->call<&cb_api::bad_rows>(&on_row, &log, 0);
  failed(wild, ward::Errc::crashed, "");
  EXPECT_EQ(wild.error().signal, SIGSEGV);
  for (int how : {0, 1}) {
    SetUp();
    std::vector<Element> els;
    ASSERT_TRUE(lib->call<&cb_api::set_handler>(&on_start, &els));
    auto r = lib->call<&cb_api::bad_attrs>(how);
    failed(r, ward::Errc::crashed, "");
    EXPECT_EQ(r.error().signal, SIGSEGV) << how;
    EXPECT_TRUE(els.empty());
  }
  EXPECT_TRUE(log.rows.empty());
}

}  // namespace

// The supervisor's replay log keeps deep copies through the same rows: a replayed call gets the
// host's function and user data back, and its own copies of the strings.
TEST(CallbackReplay, CapturedArgumentsAreDeepCopies) {
  char a[] = "a", bb[] = "bb";
  char* counted[] = {a, nullptr, bb};
  std::tuple<int, char**> args{3, counted};
  auto held = ward::detail::capture_args<FnOf<&cb_api::total_len_n>>(args);
  a[0] = 'X';
  auto again = ward::detail::args_from<FnOf<&cb_api::total_len_n>>(held);
  char** v = std::get<1>(again);
  EXPECT_STREQ(v[0], "a");
  EXPECT_EQ(v[1], nullptr);
  EXPECT_STREQ(v[2], "bb");
  EXPECT_EQ(v[3], nullptr);

  RowLog log;
  std::tuple<int, cb_row_fn, void*> exec_args{2, &on_row, &log};
  auto exec_held = ward::detail::capture_args<FnOf<&cb_api::exec>>(exec_args);
  auto exec_again = ward::detail::args_from<FnOf<&cb_api::exec>>(exec_held);
  EXPECT_EQ(std::get<1>(exec_again), &on_row);
  EXPECT_EQ(std::get<2>(exec_again), &log);
}
