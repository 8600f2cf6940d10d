// Tests for ward::Event and ward::WorkerPool: ordering, combiners, guards, authorization, stop,
// default handler, failures, async handlers, unbinding during raises, and the unbind guarantee
// under concurrent bind/unbind/raise (run this under TSan and ASan too).

#include "ward/events/event.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ward/events/combine.h"
#include "ward/events/detail/rcu.h"
#include "ward/events/worker_pool.h"

namespace ward {
namespace {

using namespace std::chrono_literals;

// Counts live copies, so tests can see exactly when a handler object is destroyed.
struct Tracked {
  static inline std::atomic<int> live{0};
  Tracked() { ++live; }
  Tracked(const Tracked&) { ++live; }
  Tracked(Tracked&&) noexcept { ++live; }
  Tracked& operator=(const Tracked&) = default;
  ~Tracked() { --live; }
};

// Waits up to `limit` for `pred`; returns its final value.
template <class P>
bool eventually(P pred, std::chrono::milliseconds limit = 5000ms) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

Error make_error(Errc kind, std::string detail) {
  Error e;
  e.kind = kind;
  e.detail = std::move(detail);
  return e;
}

const Binder kHost{"host"};

// ---- ordering ---------------------------------------------------------------------------------

TEST(EventOrder, FirstLastBeforeAfter) {
  Event<void(std::vector<std::string>*)> ev("order", "test");
  auto push = [](std::string s) { return [s](std::vector<std::string>* v) { v->push_back(s); }; };
  auto a = ev.bind(kHost, push("a"), BindOptions{.name = "a"});
  auto b = ev.bind(kHost, push("b"), BindOptions{.name = "b"});                          // last
  auto c = ev.bind(kHost, push("c"), BindOptions{.name = "c", .order = Order::first});   // first
  auto d = ev.bind(kHost, push("d"), BindOptions{.name = "d", .before = "b"});           // a d b
  auto e = ev.bind(kHost, push("e"), BindOptions{.name = "e", .after = "c"});            // c e a
  auto f = ev.bind(kHost, push("f"), BindOptions{.name = "f", .before = "b", .after = "a"});  // a f d b
  for (auto* r : {&a, &b, &c, &d, &e, &f}) ASSERT_TRUE(r->has_value()) << r->error().detail;
  std::vector<std::string> seen;
  auto r = ev.raise(&seen);
  EXPECT_EQ(seen, (std::vector<std::string>{"c", "e", "a", "f", "d", "b"}));
  EXPECT_EQ(r.ran, 6u);
  EXPECT_EQ(ev.bound(), 6u);

  // Removing one keeps the others' relative order.
  d->unbind();
  seen.clear();
  ev.raise(&seen);
  EXPECT_EQ(seen, (std::vector<std::string>{"c", "e", "a", "f", "b"}));
  EXPECT_EQ(ev.bound(), 5u);
}

TEST(EventOrder, NamingErrors) {
  Event<int(int)> ev("order", "test");
  auto a = ev.bind(kHost, [](int x) { return x; }, BindOptions{.name = "a"});
  ASSERT_TRUE(a);

  auto unknown = ev.bind(kHost, [](int x) { return x; }, BindOptions{.before = "nope"});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, Errc::misuse);
  EXPECT_NE(unknown.error().detail.find("nope"), std::string::npos);

  auto unknown_after = ev.bind(kHost, [](int x) { return x; }, BindOptions{.after = "zzz"});
  ASSERT_FALSE(unknown_after);
  EXPECT_EQ(unknown_after.error().kind, Errc::misuse);

  auto dup = ev.bind(kHost, [](int x) { return x; }, BindOptions{.name = "a"});
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().kind, Errc::misuse);

  auto b = ev.bind(kHost, [](int x) { return x; }, BindOptions{.name = "b"});
  ASSERT_TRUE(b);
  auto impossible = ev.bind(kHost, [](int x) { return x; }, BindOptions{.before = "a", .after = "b"});
  ASSERT_FALSE(impossible);
  EXPECT_EQ(impossible.error().kind, Errc::misuse);

  // Failed binds left nothing behind.
  EXPECT_EQ(ev.bound(), 2u);
  // A name is free again once its binding is gone.
  a->unbind();
  EXPECT_TRUE(ev.bind(kHost, [](int x) { return x; }, BindOptions{.name = "a"}));
}

TEST(EventBind, NullHandlerIsMisuse) {
  Event<int(int)> ev("null", "test");
  std::function<int(int)> empty;
  auto r = ev.bind(kHost, empty);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Errc::misuse);
  int (*fp)(int) = nullptr;
  EXPECT_FALSE(ev.bind(kHost, fp));
  EXPECT_EQ(ev.bound(), 0u);
}

// ---- combiners --------------------------------------------------------------------------------

TEST(EventCombine, LastIsTheDefault) {
  Event<int(int)> ev("c", "test");
  EXPECT_FALSE(ev.raise(1).value.has_value());  // no handler: nullopt
  auto a = ev.bind(kHost, [](int x) { return x + 1; });
  auto b = ev.bind(kHost, [](int x) { return x + 2; });
  auto r = ev.raise(10);
  ASSERT_TRUE(r.value);
  EXPECT_EQ(*r.value, 12);
  EXPECT_EQ(r.ran, 2u);
  // A failing last handler does not erase the earlier value.
  auto c = ev.bind(kHost, [](int) -> Result<int> { return fail(Errc::bad_data, "no"); });
  r = ev.raise(10);
  ASSERT_TRUE(r.value);
  EXPECT_EQ(*r.value, 12);
  EXPECT_EQ(r.failed.size(), 1u);
}

TEST(EventCombine, FirstSuccess) {
  Event<int(int), combine::first_success<int>> ev("c", "test");
  auto a = ev.bind(kHost, [](int) -> Result<int> { return fail(Errc::bad_data, "first fails"); });
  auto b = ev.bind(kHost, [](int x) { return x * 2; });
  auto c = ev.bind(kHost, [](int x) { return x * 3; });
  auto r = ev.raise(5);
  ASSERT_TRUE(r.value);
  EXPECT_EQ(*r.value, 10);
  EXPECT_EQ(r.ran, 3u);
  EXPECT_EQ(r.failed.size(), 1u);
}

TEST(EventCombine, AllTrueAnyTrue) {
  Event<bool(int), combine::all_true> all("all", "test");
  Event<bool(int), combine::any_true> any("any", "test");
  EXPECT_TRUE(all.raise(0).value);   // vacuous
  EXPECT_FALSE(any.raise(0).value);  // vacuous
  auto a1 = all.bind(kHost, [](int x) { return x > 0; });
  auto a2 = all.bind(kHost, [](int x) { return x > 5; });
  auto n1 = any.bind(kHost, [](int x) { return x > 0; });
  auto n2 = any.bind(kHost, [](int x) { return x > 5; });
  EXPECT_TRUE(all.raise(6).value);
  EXPECT_FALSE(all.raise(3).value);
  EXPECT_TRUE(any.raise(3).value);
  EXPECT_FALSE(any.raise(-1).value);
}

TEST(EventCombine, SumAndCollect) {
  Event<long(long), combine::sum<long>> sum("sum", "test");
  Event<std::string(int), combine::collect<std::string>> col("col", "test");
  EXPECT_EQ(sum.raise(1).value, 0);
  auto s1 = sum.bind(kHost, [](long x) { return x; });
  auto s2 = sum.bind(kHost, [](long x) { return 10 * x; });
  EXPECT_EQ(sum.raise(3).value, 33);
  auto c1 = col.bind(kHost, [](int x) { return "a" + std::to_string(x); });
  auto c2 = col.bind(kHost, [](int) -> Result<std::string> { return fail(Errc::bad_data, "skip me"); });
  auto c3 = col.bind(kHost, [](int x) { return "b" + std::to_string(x); });
  auto r = col.raise(7);
  EXPECT_EQ(r.value, (std::vector<std::string>{"a7", "b7"}));
  EXPECT_EQ(r.failed.size(), 1u);
}

// A user-defined combiner: the maximum, and how many values it saw.
struct MaxCount {
  struct result_type {
    int max = 0;
    int count = 0;
  };
  void add(const int& v) {
    r.max = r.count == 0 ? v : std::max(r.max, v);
    ++r.count;
  }
  result_type finish() && { return r; }
  result_type r;
};

TEST(EventCombine, UserDefined) {
  Event<int(int), MaxCount> ev("max", "test");
  auto a = ev.bind(kHost, [](int x) { return x - 3; });
  auto b = ev.bind(kHost, [](int x) { return x + 4; });
  auto c = ev.bind(kHost, [](int x) { return x; });
  auto r = ev.raise(10);
  EXPECT_EQ(r.value.max, 14);
  EXPECT_EQ(r.value.count, 3);
}

// A user combiner for a void event: counts the handlers that succeeded.
struct CountOk {
  using result_type = int;
  void add() { ++n; }
  int finish() && { return n; }
  int n = 0;
};

TEST(EventCombine, VoidEvents) {
  Event<void(int)> ev("void", "test");
  int calls = 0;
  auto a = ev.bind(kHost, [&](int) { ++calls; });
  auto b = ev.bind(kHost, [&](int) -> Result<void> { ++calls; return fail(Errc::limit, "full"); });
  auto c = ev.bind(kHost, [&](int) -> Result<void> { ++calls; return {}; });
  auto r = ev.raise(1);
  static_assert(std::is_same_v<decltype(r.value), std::monostate>);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(r.ran, 3u);
  ASSERT_EQ(r.failed.size(), 1u);
  EXPECT_EQ(r.failed[0].error.kind, Errc::limit);

  Event<void(int), CountOk> counted("counted", "test");
  auto d = counted.bind(kHost, [](int) {});
  auto e = counted.bind(kHost, [](int) -> Result<void> { return fail(Errc::limit, "x"); });
  auto f = counted.bind(kHost, [](int) -> Handled<void> { return {{}, false}; });
  EXPECT_EQ(counted.raise(0).value, 2);
}

TEST(EventCombine, ConvertibleResultTypes) {
  // Handlers may return a type convertible to R, also inside Result/Handled.
  Event<bool(int), combine::collect<bool>> ev("conv", "test");
  auto a = ev.bind(kHost, [](int x) { return x; });                          // int -> bool
  auto b = ev.bind(kHost, [](int x) -> Result<int> { return x - 1; });       // Result<int>
  auto c = ev.bind(kHost, [](int x) -> Handled<int> { return {x + 1, false}; });
  EXPECT_EQ(ev.raise(1).value, (std::vector<bool>{true, false, true}));
}

// ---- guards and authorization -----------------------------------------------------------------

TEST(EventGuard, GuardFilters) {
  Event<int(int), combine::collect<int>> ev("g", "test");
  auto even = ev.bind(kHost, [](int x) { return x; }, [](int x) { return x % 2 == 0; });
  auto all = ev.bind(kHost, [](int x) { return -x; });
  auto r = ev.raise(3);
  EXPECT_EQ(r.value, (std::vector<int>{-3}));
  EXPECT_EQ(r.ran, 1u);
  r = ev.raise(4);
  EXPECT_EQ(r.value, (std::vector<int>{4, -4}));
  EXPECT_EQ(r.ran, 2u);
}

TEST(EventGuard, SingleGuardedHandler) {
  // One guarded handler is raise's inline fast path: check it behaves like the general one.
  Event<int(int)> ev("g1", "test");
  auto b = ev.bind(kHost, [](int x) { return x * 2; }, [](int x) { return x > 0; });
  auto r = ev.raise(4);
  EXPECT_EQ(r.value, 8);
  EXPECT_EQ(r.ran, 1u);
  r = ev.raise(-4);
  EXPECT_FALSE(r.value.has_value());
  EXPECT_EQ(r.ran, 0u);
  ev.set_default([](int x) { return -x; });
  r = ev.raise(-4);
  EXPECT_EQ(r.value, 4);
  EXPECT_EQ(r.ran, 1u);
  EXPECT_EQ(ev.raise(4).value, 8);
}

TEST(EventGuard, ThrowingGuardIsAFailureAndSkipsTheHandler) {
  Event<int(int)> ev("g", "test");
  bool ran = false;
  auto b = ev.bind(kHost, [&](int x) { ran = true; return x; },
                   [](int) -> bool { throw std::runtime_error("bad guard"); }, BindOptions{.name = "g1"});
  auto r = ev.raise(1);
  EXPECT_FALSE(ran);
  EXPECT_EQ(r.ran, 0u);
  ASSERT_EQ(r.failed.size(), 1u);
  EXPECT_EQ(r.failed[0].binding, "g1");
  EXPECT_EQ(r.failed[0].error.kind, Errc::crashed);
  EXPECT_EQ(r.failed[0].error.detail, "guard threw: bad guard");
}

TEST(EventAuth, RefusedWithReason) {
  int domain_a = 0, domain_b = 0;  // identities only
  std::vector<std::string> asked;
  Event<int(int)> ev("net.rx", "netstack", [&](const Binder& who, const BindOptions& opts) {
    asked.push_back(who.name + "/" + opts.name);
    Authorization<int> a;
    if (who.domain == &domain_b) {
      a.allowed = false;
      a.reason = "untrusted domain";
    }
    return a;
  });
  auto ok = ev.bind(Binder{"ext-a", &domain_a}, [](int x) { return x; }, BindOptions{.name = "fa"});
  ASSERT_TRUE(ok);
  auto refused = ev.bind(Binder{"ext-b", &domain_b}, [](int x) { return x; }, BindOptions{.name = "fb"});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, Errc::violation);
  EXPECT_EQ(refused.error().detail, "untrusted domain");
  EXPECT_EQ(refused.error().plugin, "ext-b");
  EXPECT_EQ(refused.error().function, "net.rx");
  EXPECT_EQ(asked, (std::vector<std::string>{"ext-a/fa", "ext-b/fb"}));
  EXPECT_EQ(ev.bound(), 1u);
  EXPECT_EQ(ev.owner(), "netstack");
  EXPECT_EQ(ev.name(), "net.rx");
}

TEST(EventAuth, ThrowingAuthorizerRefuses) {
  Event<int(int)> ev("e", "o", [](const Binder&, const BindOptions&) -> Authorization<int> {
    throw std::runtime_error("policy db down");
  });
  auto r = ev.bind(kHost, [](int x) { return x; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Errc::violation);
  EXPECT_NE(r.error().detail.find("policy db down"), std::string::npos);
}

TEST(EventAuth, ImposedGuardIsAndedWithTheBindersGuard) {
  // The owner only lets extensions see ports below 1024; the extension itself only wants even ones.
  int ext = 0;
  Event<int(int), combine::collect<int>> ev("port", "owner", [&](const Binder& who, const BindOptions&) {
    Authorization<int> a;
    if (who.domain == &ext) a.imposed_guard = [](const int& port) { return port < 1024; };
    return a;
  });
  int ext_calls = 0;
  auto e = ev.bind(Binder{"ext", &ext}, [&](int p) { ++ext_calls; return p; }, [](int p) { return p % 2 == 0; });
  auto h = ev.bind(kHost, [](int p) { return -p; });  // host: no imposed guard
  ASSERT_TRUE(e);
  ASSERT_TRUE(h);
  EXPECT_EQ(ev.raise(80).value, (std::vector<int>{80, -80}));   // both accept
  EXPECT_EQ(ev.raise(81).value, (std::vector<int>{-81}));       // own guard refuses
  EXPECT_EQ(ev.raise(8080).value, (std::vector<int>{-8080}));   // imposed guard refuses
  EXPECT_EQ(ev.raise(8081).value, (std::vector<int>{-8081}));   // both refuse
  EXPECT_EQ(ext_calls, 1);

  // The imposed guard also applies to an extension that brought no guard of its own.
  auto e2 = ev.bind(Binder{"ext2", &ext}, [](int p) { return p * 100; });
  EXPECT_EQ(ev.raise(2000).value, (std::vector<int>{-2000}));
  EXPECT_EQ(ev.raise(1).value, (std::vector<int>{-1, 100}));

  // ... also when it is the event's only handler (the inline single-handler path).
  e->unbind();
  h->unbind();
  EXPECT_EQ(ev.bound(), 1u);
  EXPECT_TRUE(ev.raise(2000).value.empty());
  EXPECT_EQ(ev.raise(3).value, (std::vector<int>{300}));
}

// ---- stop, default, failures --------------------------------------------------------------------

TEST(EventFlow, StopEndsTheRaise) {
  Event<int(int), combine::collect<int>> ev("stop", "test");
  int later = 0;
  auto a = ev.bind(kHost, [](int x) { return x; });
  auto b = ev.bind(kHost, [](int x) -> Handled<int> { return {x * 10, x > 0}; });
  auto c = ev.bind(kHost, [&](int x) { ++later; return x * 100; });
  auto r = ev.raise(1);
  EXPECT_EQ(r.value, (std::vector<int>{1, 10}));
  EXPECT_EQ(r.ran, 2u);
  EXPECT_EQ(later, 0);
  r = ev.raise(-1);  // stop == false: carries on
  EXPECT_EQ(r.value, (std::vector<int>{-1, -10, -100}));
  EXPECT_EQ(later, 1);

  // Stop with an error: recorded, and still stops.
  Event<int(int), combine::collect<int>> ev2("stop2", "test");
  auto d = ev2.bind(kHost, [](int) -> Handled<int> { return {fail(Errc::violation, "halt"), true}; });
  auto e = ev2.bind(kHost, [&](int x) { ++later; return x; });
  r = ev2.raise(1);
  EXPECT_TRUE(r.value.empty());
  EXPECT_EQ(r.failed.size(), 1u);
  EXPECT_EQ(later, 1);
}

TEST(EventFlow, DefaultHandler) {
  Event<std::string(int)> ev("dflt", "test");
  ev.set_default([](int) { return std::string("default"); });
  auto r = ev.raise(1);  // no handlers at all
  EXPECT_EQ(r.value, "default");
  EXPECT_EQ(r.ran, 1u);

  auto b = ev.bind(kHost, [](int) { return std::string("positive"); }, [](int x) { return x > 0; });
  EXPECT_EQ(ev.raise(1).value, "positive");
  r = ev.raise(-1);  // the only guard refuses
  EXPECT_EQ(r.value, "default");
  EXPECT_EQ(r.ran, 1u);

  // A handler that accepted and failed still counts as handled: no default.
  auto f = ev.bind(kHost, [](int) -> Result<std::string> { return fail(Errc::crashed, "x"); },
                   [](int x) { return x < -10; });
  r = ev.raise(-20);
  EXPECT_FALSE(r.value.has_value());
  EXPECT_EQ(r.failed.size(), 1u);
  EXPECT_EQ(r.ran, 1u);

  // Replacing and clearing.
  ev.set_default([](int) { return std::string("other"); });
  EXPECT_EQ(ev.raise(-1).value, "other");
  ev.clear_default();
  r = ev.raise(-1);
  EXPECT_FALSE(r.value.has_value());
  EXPECT_EQ(r.ran, 0u);
}

TEST(EventFlow, FailuresAreListedAndTheRaiseCarriesOn) {
  Event<int(int), combine::collect<int>> ev("fail", "owner");
  auto a = ev.bind(Binder{"ext-a"}, [](int) -> Result<int> { return fail(Errc::bad_data, "bad checksum"); },
                   BindOptions{.name = "checksum"});
  auto b = ev.bind(Binder{"ext-b"}, [](int) -> int { throw std::runtime_error("boom"); });
  auto c = ev.bind(kHost, [](int) -> int { throw 42; });
  auto d = ev.bind(Binder{}, [](int) -> Result<int> {
    Error e = make_error(Errc::limit, "arena");
    e.plugin = "custom";
    return std::unexpected(e);
  });
  auto ok = ev.bind(kHost, [](int x) { return x; });
  auto r = ev.raise(7);
  EXPECT_EQ(r.value, (std::vector<int>{7}));
  EXPECT_EQ(r.ran, 5u);
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.failed.size(), 4u);
  EXPECT_EQ(r.failed[0].binding, "checksum");
  EXPECT_EQ(r.failed[0].error.kind, Errc::bad_data);
  EXPECT_EQ(r.failed[0].error.plugin, "ext-a");   // filled in
  EXPECT_EQ(r.failed[0].error.function, "fail");  // filled in
  EXPECT_EQ(r.failed[1].binding, "ext-b");        // binder name when unnamed
  EXPECT_EQ(r.failed[1].error.kind, Errc::crashed);
  EXPECT_EQ(r.failed[1].error.detail, "handler threw: boom");
  EXPECT_EQ(r.failed[2].error.detail, "handler threw: unknown exception");
  EXPECT_EQ(r.failed[3].binding.rfind("binding#", 0), 0u);
  EXPECT_EQ(r.failed[3].error.plugin, "custom");  // kept
}

TEST(EventFlow, ArgumentsByReferenceAndNestedRaise) {
  Event<void(int&)> inc("inc", "test");
  auto a = inc.bind(kHost, [](int& x) { ++x; });
  auto b = inc.bind(kHost, [](int& x) { x *= 10; });
  int v = 1;
  inc.raise(v);
  EXPECT_EQ(v, 20);

  // A handler may raise events, including its own (sections nest).
  Event<int(int), combine::sum<int>> fact("fact", "test");
  auto f = fact.bind(kHost, [&fact](int n) -> int { return n <= 1 ? 1 : n * fact.raise(n - 1).value; });
  EXPECT_EQ(fact.raise(5).value, 120);
}

// ---- bindings and lifetime --------------------------------------------------------------------

TEST(EventBinding, UnbindDestroysTheHandlerAndMoves) {
  ASSERT_EQ(Tracked::live.load(), 0);
  Event<int(int)> ev("life", "test");
  {
    auto r = ev.bind(kHost, [t = Tracked()](int x) { return x; }, BindOptions{.name = "t"});
    ASSERT_TRUE(r);
    EXPECT_EQ(Tracked::live.load(), 1);
    Binding b = std::move(*r);
    EXPECT_TRUE(b.bound());
    EXPECT_FALSE(r->bound());  // moved-from
    EXPECT_EQ(b.label(), "t");
    Binding c;
    c = std::move(b);
    EXPECT_TRUE(c.bound());
    EXPECT_EQ(ev.bound(), 1u);
    c.unbind();
    EXPECT_FALSE(c.bound());
    EXPECT_EQ(Tracked::live.load(), 0);  // destroyed when unbind returned
    EXPECT_EQ(ev.bound(), 0u);
    c.unbind();  // idempotent
  }
  {
    auto r = ev.bind(kHost, [t = Tracked()](int x) { return x; });
    EXPECT_EQ(Tracked::live.load(), 1);
  }  // ~Binding unbinds
  EXPECT_EQ(Tracked::live.load(), 0);
  EXPECT_FALSE(ev.raise(1).value.has_value());
}

TEST(EventBinding, BindingOutlivesTheEvent) {
  Binding keep;
  {
    Event<int(int)> ev("short", "test");
    auto r = ev.bind(kHost, [t = Tracked()](int x) { return x; });
    ASSERT_TRUE(r);
    keep = std::move(*r);
    ev.set_default([t = Tracked()](int x) { return x; });
    EXPECT_EQ(Tracked::live.load(), 2);
  }
  EXPECT_EQ(Tracked::live.load(), 0);  // the event's destructor destroyed both
  EXPECT_FALSE(keep.bound());
  keep.unbind();  // no-op, no crash
}

TEST(EventBinding, UnbindDomain) {
  int dom1 = 0, dom2 = 0;
  Event<int(int), combine::sum<int>> ev("dom", "test");
  auto a = ev.bind(Binder{"a", &dom1}, [](int x) { return x; });
  auto b = ev.bind(Binder{"b", &dom2}, [](int x) { return 10 * x; });
  auto c = ev.bind(Binder{"c", &dom1}, [t = Tracked()](int x) { return 100 * x; });
  EXPECT_EQ(ev.raise(1).value, 111);
  EXPECT_EQ(ev.unbind_domain(&dom1), 2u);
  EXPECT_EQ(Tracked::live.load(), 0);
  EXPECT_FALSE(a->bound());
  EXPECT_TRUE(b->bound());
  EXPECT_EQ(ev.raise(1).value, 10);
  EXPECT_EQ(ev.unbind_domain(&dom1), 0u);
  a->unbind();  // already gone: no-op
}

TEST(EventBinding, HandlerUnbindsItselfDuringARaise) {
  Event<int(int), combine::sum<int>> ev("self", "test");
  int calls = 0;
  bool state_ok_after_unbind = false;
  Binding self;
  auto r = ev.bind(kHost, [&, t = Tracked(), s = std::make_unique<int>(5)](int x) {
    ++calls;
    self.unbind();  // from inside itself: must not deadlock, must not destroy us now
    state_ok_after_unbind = *s == 5 && Tracked::live.load() == 2;  // `t` + the other handler's
    return x;
  });
  ASSERT_TRUE(r);
  self = std::move(*r);
  auto other = ev.bind(kHost, [t = Tracked()](int x) { return 100 * x; });
  EXPECT_EQ(Tracked::live.load(), 2);
  EXPECT_EQ(ev.raise(1).value, 101);
  EXPECT_TRUE(state_ok_after_unbind);
  EXPECT_EQ(ev.raise(1).value, 100);  // no longer called
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ev.bound(), 1u);
  // Its state is destroyed once the deferred reclamation ran.
  ASSERT_TRUE(detail::rcu::barrier());
  EXPECT_EQ(Tracked::live.load(), 1);
}

TEST(EventBinding, UnbindingALaterHandlerSkipsItInTheSameRaise) {
  Event<int(int), combine::collect<int>> ev("skip", "test");
  Binding victim;
  auto killer = ev.bind(kHost, [&](int x) { victim.unbind(); return x; });
  auto r = ev.bind(kHost, [](int x) { return -x; });
  ASSERT_TRUE(r);
  victim = std::move(*r);
  EXPECT_EQ(ev.raise(3).value, (std::vector<int>{3}));
  EXPECT_TRUE(detail::rcu::barrier());
}

TEST(EventBinding, UnbindWaitsForARunningHandler) {
  Event<int(int)> ev("wait", "test");
  std::atomic<bool> entered{false}, release{false}, unbound{false};
  auto state = std::make_unique<std::atomic<int>>(1);
  auto r = ev.bind(kHost, [&, p = state.get()](int x) {
    entered = true;
    while (!release) std::this_thread::sleep_for(1ms);
    return x + p->load();
  });
  ASSERT_TRUE(r);
  std::thread raiser([&] { EXPECT_EQ(ev.raise(1).value, 2); });
  ASSERT_TRUE(eventually([&] { return entered.load(); }));
  std::thread unbinder([&] {
    r->unbind();
    unbound = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(unbound.load());  // the handler is still running: unbind must not return yet
  release = true;
  unbinder.join();
  EXPECT_TRUE(unbound.load());
  raiser.join();
  state.reset();  // safe now
}

// ---- async --------------------------------------------------------------------------------------

TEST(EventAsync, RaiseDoesNotWaitAndHandlersRun) {
  Event<int(const std::string&), combine::collect<int>> ev("async", "test");
  std::promise<void> gate;
  std::shared_future<void> open = gate.get_future().share();
  std::mutex mu;
  std::vector<std::string> seen;
  std::atomic<int> done{0};
  auto slow = ev.bind(kHost, [&, open](const std::string& s) {
    open.wait();
    std::lock_guard lk(mu);
    seen.push_back(s);
    ++done;
    return 0;
  }, BindOptions{.name = "slow", .async = true});
  auto sync = ev.bind(kHost, [](const std::string& s) { return static_cast<int>(s.size()); });
  ASSERT_TRUE(slow);
  std::string arg = "hello";
  auto r = ev.raise(arg);  // returns although the async handler is blocked
  EXPECT_EQ(r.value, (std::vector<int>{5}));  // async results are not combined
  EXPECT_EQ(r.ran, 1u);                       // only the synchronous one ran here
  arg = "changed";                            // the async handler got a copy
  EXPECT_EQ(done.load(), 0);
  gate.set_value();
  ASSERT_TRUE(eventually([&] { return done.load() == 1; }));
  std::lock_guard lk(mu);
  EXPECT_EQ(seen, (std::vector<std::string>{"hello"}));
}

TEST(EventAsync, AcceptedAsyncHandlerSuppressesTheDefault) {
  Event<int(int)> ev("async-default", "test");
  std::atomic<int> async_calls{0}, default_calls{0};
  ev.set_default([&](int) { ++default_calls; return 0; });
  auto a = ev.bind(kHost, [&](int) { ++async_calls; return 1; }, [](int x) { return x > 0; },
                   BindOptions{.async = true});
  ev.raise(1);
  ev.raise(-1);
  ASSERT_TRUE(eventually([&] { return async_calls.load() == 1; }));
  EXPECT_EQ(default_calls.load(), 1);
}

TEST(EventAsync, FailuresAreCounted) {
  Event<int(int)> ev("async-fail", "test");
  std::atomic<int> calls{0};
  auto a = ev.bind(kHost, [&](int x) -> Result<int> {
    ++calls;
    if (x < 0) return fail(Errc::bad_data, "negative");
    return x;
  }, BindOptions{.async = true});
  auto b = ev.bind(kHost, [&](int x) -> int {
    ++calls;
    if (x == 0) throw std::runtime_error("zero");
    return x;
  }, BindOptions{.async = true});
  ev.raise(1);   // none fail
  ev.raise(-1);  // a fails
  ev.raise(0);   // b throws
  ASSERT_TRUE(eventually([&] { return calls.load() == 6; }));
  ASSERT_TRUE(eventually([&] { return ev.async_failures() == 2; }));
  EXPECT_EQ(ev.async_failures(), 2u);
}

TEST(EventAsync, UnbindWaitsForRunningAsyncInvocation) {
  Event<void(int)> ev("async-unbind", "test");
  std::atomic<bool> entered{false}, release{false}, unbound{false}, after_unbind{false};
  auto r = ev.bind(kHost, [&, t = Tracked()](int) {
    entered = true;
    while (!release) std::this_thread::sleep_for(1ms);
    if (unbound) after_unbind = true;  // would mean unbind returned while we ran
  }, BindOptions{.async = true});
  ASSERT_TRUE(r);
  ev.raise(1);
  ASSERT_TRUE(eventually([&] { return entered.load(); }));
  std::thread unbinder([&] {
    r->unbind();
    unbound = true;
  });
  std::this_thread::sleep_for(50ms);
  EXPECT_FALSE(unbound.load());
  release = true;
  unbinder.join();
  EXPECT_FALSE(after_unbind.load());
  EXPECT_EQ(Tracked::live.load(), 0);
  ev.raise(2);  // unbound: nothing queued
  ASSERT_TRUE(WorkerPool::default_pool().wait_idle());
}

TEST(EventAsync, AsyncHandlerUnbindsItself) {
  Event<void(int)> ev("async-self", "test");
  std::atomic<int> calls{0};
  Binding self;
  auto r = ev.bind(kHost, [&, t = Tracked()](int) {
    ++calls;
    self.unbind();  // inside an async handler: deferred, must not deadlock
  }, BindOptions{.async = true});
  ASSERT_TRUE(r);
  self = std::move(*r);
  ev.raise(1);
  ASSERT_TRUE(WorkerPool::default_pool().wait_idle());
  ASSERT_TRUE(detail::rcu::barrier());
  ASSERT_TRUE(eventually([] { return Tracked::live.load() == 0; }));
  ev.raise(2);
  ASSERT_TRUE(WorkerPool::default_pool().wait_idle());
  EXPECT_EQ(calls.load(), 1);
}

TEST(EventAsync, DestroyingTheEventWaitsForRunningAndDropsQueuedInvocations) {
  std::atomic<int> calls{0};
  std::atomic<bool> entered{false}, release{false};
  WorkerPool& pool = WorkerPool::default_pool();
  std::thread releaser;
  {
    Event<void(int)> ev("async-dtor", "test");
    auto a = ev.bind(kHost, [&, t = Tracked()](int) {
      entered = true;
      while (!release) std::this_thread::sleep_for(1ms);
      ++calls;
    }, BindOptions{.async = true});
    ASSERT_TRUE(a);
    for (int i = 0; i < 50; ++i) ev.raise(i);  // one runs (and blocks), the rest queue up
    ASSERT_TRUE(eventually([&] { return entered.load(); }));
    releaser = std::thread([&] {
      std::this_thread::sleep_for(30ms);
      release = true;
    });
    // ~Binding and ~Event must wait for the running invocation, and no queued one may start
    // afterwards: the handler object is destroyed when the scope ends.
  }
  EXPECT_TRUE(release.load());  // the destructors could not return before the handler finished
  releaser.join();
  EXPECT_EQ(Tracked::live.load(), 0);
  const int after_destruction = calls.load();
  ASSERT_TRUE(pool.wait_idle());
  EXPECT_EQ(calls.load(), after_destruction);  // queued invocations were dropped
  // Only invocations already running when the event went away (at most one per pool thread).
  EXPECT_LE(after_destruction, static_cast<int>(pool.size()));
}

TEST(EventAsync, NonCopyableArgumentsCannotBeAsync) {
  Event<void(std::unique_ptr<int>&)> ev("moveonly", "test");
  auto r = ev.bind(kHost, [](std::unique_ptr<int>&) {}, BindOptions{.async = true});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, Errc::misuse);
  auto s = ev.bind(kHost, [](std::unique_ptr<int>& p) { *p += 1; });
  auto p = std::make_unique<int>(1);
  ev.raise(p);
  EXPECT_EQ(*p, 2);
}

// ---- the worker pool ----------------------------------------------------------------------------

TEST(WorkerPoolTest, RunsDrainsAndShutsDown) {
  std::atomic<int> n{0};
  {
    WorkerPool pool(2);
    EXPECT_EQ(pool.size(), 2u);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(pool.submit([&] { ++n; }));
    ASSERT_TRUE(pool.submit([] { throw std::runtime_error("task error"); }));
    ASSERT_TRUE(pool.wait_idle());
    EXPECT_EQ(n.load(), 100);
    EXPECT_EQ(pool.uncaught(), 1u);
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(pool.submit([&] {
      std::this_thread::sleep_for(10us);
      ++n;
    }));
    pool.shutdown();  // drains what was queued
    EXPECT_EQ(n.load(), 200);
    auto late = pool.submit([&] { ++n; });
    ASSERT_FALSE(late);
    EXPECT_EQ(late.error().kind, Errc::misuse);
    pool.shutdown();  // idempotent
  }
  {
    // Misuse from inside a task reports instead of deadlocking.
    WorkerPool pool(1);
    std::promise<bool> from_task;
    ASSERT_TRUE(pool.submit([&] {
      from_task.set_value(!pool.wait_idle().has_value() && pool.on_pool_thread());
    }));
    EXPECT_TRUE(from_task.get_future().get());
    EXPECT_FALSE(pool.on_pool_thread());
  }
  EXPECT_EQ(n.load(), 200);
  EXPECT_GE(WorkerPool::default_pool().size(), 1u);
}

// ---- the unbind guarantee under concurrency -----------------------------------------------------

// Two threads bind and unbind handlers (some guarded, some async) while two threads raise and a
// fifth revokes the binders' domain now and then (so some unbinds find their handler already
// unlinked by unbind_domain). Each handler owns a canary; right after unbind returns the binder
// marks it dead, and later frees it.
// A handler that runs on a dead canary (called after its unbind returned, or still running when
// it returned) counts a violation. Under TSan, the plain (non-atomic) canary word also turns any
// missing happens-before edge into a reported race; under ASan, a freed canary would be caught.
struct Canary {
  static constexpr int kAlive = 0x5AFE;
  static constexpr int kDead = 0xDEAD;
  int state = kAlive;
};

// ---- nesting: a handler that raises, directly or through others, cannot exhaust the stack ----

// Each handler below stops recursing by itself after kSafety levels, so that without the limit
// the test fails cleanly instead of overflowing the stack.
constexpr int kSafety = 1000;

TEST(EventNesting, AHandlerThatReRaisesItsOwnEventForeverGetsTheLimitError) {
  Event<int(int)> ev("net.loop", "netstack");
  int entered = 0;
  std::vector<HandlerFailure<>> inner;  // what the innermost raise reported
  auto b = ev.bind({"looper"}, [&](int depth) {
    ++entered;
    if (depth < kSafety) {
      auto r = ev.raise(depth + 1);
      if (!r.failed.empty() && inner.empty()) inner = r.failed;
    }
    return depth;
  });
  ASSERT_TRUE(b);
  const auto r = ev.raise(1);
  EXPECT_TRUE(r.ok());  // the outermost raise itself was fine: its handler ran and returned
  EXPECT_EQ(r.value, std::optional<int>(1));
  const unsigned limit = NestingLimits{}.same_event;
  EXPECT_EQ(entered, static_cast<int>(limit));
  ASSERT_EQ(inner.size(), 1u);
  const Error& e = inner[0].error;
  EXPECT_EQ(e.kind, Errc::limit) << e.message();
  EXPECT_EQ(e.function, "net.loop");
  EXPECT_NE(e.detail.find("net.loop"), std::string::npos) << e.detail;
  EXPECT_NE(e.detail.find(std::to_string(limit + 1)), std::string::npos) << e.detail;  // the depth
  EXPECT_NE(e.detail.find("limit " + std::to_string(limit)), std::string::npos) << e.detail;

  // Nothing is left over: the next raise starts from the bottom again.
  entered = 0;
  inner.clear();
  (void)ev.raise(1);
  EXPECT_EQ(entered, static_cast<int>(limit));
}

TEST(EventNesting, TheLimitIsConfigurablePerEvent) {
  Event<void()> ev("tick", "clock");
  ev.set_nesting_limits({.same_event = 3, .any_event = 64});
  EXPECT_EQ(ev.nesting_limits().same_event, 3u);
  int entered = 0;
  std::optional<Error> refused;
  auto b = ev.bind({"again"}, [&] {
    if (++entered >= kSafety) return;
    auto r = ev.raise();
    if (!r.failed.empty() && !refused) refused = r.failed[0].error;
  });
  ASSERT_TRUE(b);
  (void)ev.raise();
  EXPECT_EQ(entered, 3);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->kind, Errc::limit);
}

TEST(EventNesting, ACycleThroughTwoEventsIsBoundedPerThread) {
  // A's handler raises B, B's raises A: each event alone stays under its own limit for a while,
  // the thread's total does not.
  Event<int(int)> a("a", "test"), b("b", "test");
  const NestingLimits lim{.same_event = 100, .any_event = 10};
  a.set_nesting_limits(lim);
  b.set_nesting_limits(lim);
  int entered = 0;
  std::optional<Error> refused;
  auto relay = [&](Event<int(int)>& next) {
    return [&](int depth) {
      ++entered;
      if (depth < kSafety) {
        auto r = next.raise(depth + 1);
        if (!r.failed.empty() && !refused) refused = r.failed[0].error;
      }
      return depth;
    };
  };
  auto ba = a.bind({"to-b"}, relay(b));
  auto bb = b.bind({"to-a"}, relay(a));
  ASSERT_TRUE(ba && bb);
  (void)a.raise(1);
  EXPECT_EQ(entered, 10);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->kind, Errc::limit);
  EXPECT_EQ(refused->function, "a");  // the 11th raise is A's
  EXPECT_NE(refused->detail.find("11"), std::string::npos) << refused->detail;
}

TEST(EventNesting, RaisesOnOtherThreadsDoNotCount) {
  Event<int(int)> ev("deep", "test");
  ev.set_nesting_limits({.same_event = 4, .any_event = 4});
  std::atomic<int> max_seen{0};
  auto b = ev.bind({"h"}, [&](int depth) {
    int m = max_seen.load();
    while (depth > m && !max_seen.compare_exchange_weak(m, depth)) {
    }
    if (depth < kSafety) (void)ev.raise(depth + 1);
    return depth;
  });
  ASSERT_TRUE(b);
  std::thread t1([&] { (void)ev.raise(1); });
  std::thread t2([&] { (void)ev.raise(1); });
  t1.join();
  t2.join();
  EXPECT_EQ(max_seen.load(), 4);
}

TEST(EventStress, BindUnbindWhileRaising) {
  Event<int(int), combine::sum<int>> sync_ev("stress", "test");
  Event<void(int)> async_ev("stress-async", "test");
  std::atomic<bool> stop{false};
  std::atomic<long> violations{0}, calls{0}, async_calls{0}, raises{0}, binds{0}, revoked{0};
  int domain = 0;  // identity of the binders' "extension"
  const Binder who{"binder", &domain};

  auto check = [&violations](const Canary* c) {
    if (c->state != Canary::kAlive) violations.fetch_add(1, std::memory_order_relaxed);
  };

  auto binder = [&](int id) {
    std::vector<std::unique_ptr<Canary>> graveyard;  // dead canaries stay readable (not reused)
    for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      auto canary = std::make_unique<Canary>();
      Canary* c = canary.get();
      Result<Binding> b;
      const std::string name = "b" + std::to_string(id) + "-" + std::to_string(i);
      if (i % 16 == 5) {
        b = async_ev.bind(who, [c, &check, &async_calls](int) {
          check(c);
          async_calls.fetch_add(1, std::memory_order_relaxed);
          check(c);
        }, BindOptions{.name = name, .async = true});
      } else if (i % 2 == 0) {
        b = sync_ev.bind(who, [c, &check, &calls](int x) {
          check(c);
          for (int k = 0; k < 20; ++k) std::atomic_signal_fence(std::memory_order_seq_cst);  // linger
          calls.fetch_add(1, std::memory_order_relaxed);
          check(c);
          return x;
        }, BindOptions{.name = name, .order = i % 4 == 0 ? Order::first : Order::last});
      } else {
        b = sync_ev.bind(who, [c, &check, &calls](int x) {
          check(c);
          calls.fetch_add(1, std::memory_order_relaxed);
          return x;
        }, [](int x) { return x % 3 != 0; }, BindOptions{.name = name});
      }
      ASSERT_TRUE(b) << b.error().detail;
      binds.fetch_add(1, std::memory_order_relaxed);
      std::this_thread::yield();
      if (i % 3 == 0) {
        b->unbind();
      } else {
        Binding moved = std::move(*b);
      }  // ~Binding unbinds
      c->state = Canary::kDead;  // plain write: TSan checks it is ordered after every handler read
      graveyard.push_back(std::move(canary));
    }
  };

  auto raiser = [&] {
    for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      sync_ev.raise(i);
      if (i % 64 == 0) async_ev.raise(i);
      raises.fetch_add(1, std::memory_order_relaxed);
    }
  };

  auto revoker = [&] {
    while (!stop.load(std::memory_order_relaxed)) {
      std::this_thread::sleep_for(3ms);
      revoked.fetch_add(static_cast<long>(sync_ev.unbind_domain(&domain) + async_ev.unbind_domain(&domain)),
                        std::memory_order_relaxed);
    }
  };

  std::vector<std::thread> threads;
  threads.emplace_back(revoker);
  threads.emplace_back(binder, 0);
  threads.emplace_back(binder, 1);
  threads.emplace_back(raiser);
  threads.emplace_back(raiser);
  std::this_thread::sleep_for(1s);
  stop = true;
  for (auto& t : threads) t.join();
  ASSERT_TRUE(WorkerPool::default_pool().wait_idle());

  EXPECT_EQ(violations.load(), 0);
  EXPECT_GT(raises.load(), 1000);
  EXPECT_GT(binds.load(), 20);  // each unbind waits a grace period; slow on a loaded 2-CPU box
  EXPECT_GT(calls.load(), 0);
  EXPECT_EQ(sync_ev.bound(), 0u);
  EXPECT_EQ(async_ev.bound(), 0u);
  std::printf("[ stress   ] %ld raises, %ld binds (%ld revoked by domain), %ld handler calls, %ld async calls\n",
              raises.load(), binds.load(), revoked.load(), calls.load(), async_calls.load());
}

TEST(EventStress, NothingLeftAlive) {
  // Runs last in this file: every handler object created above has been destroyed.
  ASSERT_TRUE(detail::rcu::barrier());
  ASSERT_TRUE(WorkerPool::default_pool().wait_idle());
  EXPECT_TRUE(eventually([] { return Tracked::live.load() == 0; }));
}

}  // namespace
}  // namespace ward
