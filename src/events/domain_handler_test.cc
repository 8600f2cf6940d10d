// Events whose handlers live in extensions: a raise crosses into process domains; a handler whose
// extension fails is skipped for that raise (its failure listed), recovered by the supervisor,
// and the raise and the other handlers carry on. The packet-dispatch example is the workload.
#include <gtest/gtest.h>

#include <vector>

#include "packet_dispatch.h"

namespace {

using namespace std::chrono_literals;

std::string plugin(const char* name) { return std::string(WARD_PLUGIN_DIR) + "/lib" + name + ".so"; }

int g_pkt_logs = 0;
constexpr pkt_host kPktHost{[](const char*) { ++g_pkt_logs; }};

struct Dispatch : ::testing::Test {
  void SetUp() override {
    auto pol = ward::Policy::builder().timeout(500ms).grant("pkt_host").build();
    ASSERT_TRUE(pol);
    auto f = sup.load<pktfilter_api>(plugin("pktfilter"), "pktfilter_entry", *pol);
    ASSERT_TRUE(f) << f.error().message();
    filter = std::move(*f);
    ASSERT_TRUE(filter->call<&pktfilter_api::init>(&kPktHost, std::uint16_t{23}));
    ASSERT_TRUE(stack.bind_local_handlers());
    ASSERT_TRUE(stack.bind_filter(*filter));
  }
  void TearDown() override {}
  static packet pkt(std::uint8_t proto, std::uint16_t port, std::uint32_t src = 0xC0A80001u, std::uint32_t len = 4) {
    packet p{};
    p.proto = proto;
    p.dst_port = port;
    p.src_addr = src;
    p.len = len;
    return p;
  }
  ward::Supervisor sup{{.max_restarts = 10, .window = 10s}};
  std::unique_ptr<ward::Extension<pktfilter_api>> filter;
  example::PacketStack stack;  // declared after the filter: unbinds before the filter goes
};

TEST_F(Dispatch, GuardsSelectHandlersAndTheDomainHandlerVotes) {
  const std::uint8_t payload[4] = {1, 2, 3, 4};
  const packet web = pkt(PKT_TCP, 80), telnet = pkt(PKT_TCP, 23), dns = pkt(PKT_UDP, 53), ping = pkt(PKT_ICMP, 0);
  auto r1 = stack.received().raise(&web, payload, 4);
  EXPECT_TRUE(r1.value);      // accepted by the tcp counter and the filter
  EXPECT_EQ(r1.ran, 2u);
  EXPECT_TRUE(r1.failed.empty());
  auto r2 = stack.received().raise(&telnet, payload, 4);
  EXPECT_FALSE(r2.value);     // the filter in its domain drops port 23
  auto r3 = stack.received().raise(&dns, payload, 4);
  EXPECT_TRUE(r3.value);
  EXPECT_EQ(r3.ran, 2u);      // dns responder + filter
  auto r4 = stack.received().raise(&ping, payload, 4);
  EXPECT_EQ(r4.ran, 0u);      // nobody wants ICMP
  EXPECT_EQ(stack.tcp_count(), 2);
  EXPECT_EQ(stack.dns_count(), 1);
  auto seen = filter->call<&pktfilter_api::seen>();
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->unverified_value_i_trust_it(), 3u);
  EXPECT_EQ(g_pkt_logs, 1);   // its log service (granted) reached the host once
}

TEST_F(Dispatch, TheOwnersImposedGuardHidesManagementTrafficFromExtensions) {
  const std::uint8_t payload[4] = {};
  const packet mgmt = pkt(PKT_TCP, 23, 0x0A000001u);  // from 10.0.0.1, to the blocked port
  auto r = stack.received().raise(&mgmt, payload, 4);
  EXPECT_TRUE(r.value);  // the filter never saw it, so nothing dropped it
  EXPECT_EQ(r.ran, 1u);  // the host's tcp counter only
  auto seen = filter->call<&pktfilter_api::seen>();
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->unverified_value_i_trust_it(), 0u);
}

TEST_F(Dispatch, TheOwnerRefusesBinders) {
  auto b = stack.received().bind({"root"}, [](const packet*, const std::uint8_t*, std::size_t) { return true; });
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().kind, ward::Errc::violation);
  EXPECT_NE(b.error().detail.find("root"), std::string::npos) << b.error().detail;
}

TEST_F(Dispatch, AFailingDomainHandlerIsSkippedRecoveredAndTheRaiseCarriesOn) {
  const std::uint8_t payload[4] = {};
  const packet web = pkt(PKT_TCP, 80);
  const pid_t before = ward::pid_of(filter->domain());
  ASSERT_TRUE(filter->call<&pktfilter_api::crash_next>());
  auto r = stack.received().raise(&web, payload, 4);
  // The tcp counter ran; the filter's handler failed and is listed; the raise returned.
  ASSERT_EQ(r.failed.size(), 1u);
  EXPECT_EQ(r.failed[0].binding, "pktfilter");
  EXPECT_EQ(r.failed[0].error.kind, ward::Errc::crashed) << r.failed[0].error.message();
  EXPECT_EQ(stack.tcp_count(), 1);
  // The supervisor restarted the filter (on_packet is not idempotent: no retry); the next
  // raise reaches the fresh instance, whose replayed init still blocks port 23.
  EXPECT_NE(ward::pid_of(filter->domain()), before);
  const packet telnet = pkt(PKT_TCP, 23);
  auto r2 = stack.received().raise(&telnet, payload, 4);
  EXPECT_TRUE(r2.failed.empty());
  EXPECT_FALSE(r2.value);
}

TEST_F(Dispatch, AVerifierRejectsImpossibleResults) {
  // A handler whose verifier refuses everything: its results never reach the combiner.
  auto b = stack.received().bind(ward::binder_for(*filter, "strict"),
                                 ward::from_domain<&pktfilter_api::on_packet>(*filter, [](int) { return false; }),
                                 ward::no_guard{}, {.name = "strict"});
  ASSERT_TRUE(b) << b.error().message();
  const std::uint8_t payload[4] = {};
  const packet web = pkt(PKT_TCP, 80);
  auto r = stack.received().raise(&web, payload, 4);
  ASSERT_EQ(r.failed.size(), 1u);
  EXPECT_EQ(r.failed[0].binding, "strict");
  EXPECT_EQ(r.failed[0].error.kind, ward::Errc::bad_data);
}

TEST_F(Dispatch, AnExtensionGuardDecidesInItsOwnDomain) {
  std::atomic<int> calls{0};
  auto b = stack.received().bind(
      {"icmp-watch"}, [&](const packet*, const std::uint8_t*, std::size_t) { ++calls; return true; },
      ward::guard_from_domain<&pktfilter_api::wants>(
          *filter, [](const packet* p, const std::uint8_t*, std::size_t) { return std::tuple{p->proto, p->dst_port}; }),
      {.name = "icmp-watch"});
  ASSERT_TRUE(b);
  const std::uint8_t payload[4] = {};
  const packet ping = pkt(PKT_ICMP, 0), web = pkt(PKT_TCP, 80);
  (void)stack.received().raise(&ping, payload, 4);  // wants() says no for ICMP
  (void)stack.received().raise(&web, payload, 4);   // and yes for TCP
  EXPECT_EQ(calls.load(), 1);
}

// A handler in an extension whose host service raises the same event again (issue 8, finding
// 11): raise -> on_packet (in the domain) -> log (host service) -> raise -> ... The nesting limit
// ends it with Errc::limit; every level returns, the host and the extension keep running.
struct Reentrant {
  static inline ward::Event<bool(const packet*, const std::uint8_t*, std::size_t), ward::combine::all_true>* event =
      nullptr;
  static inline std::vector<ward::Error> refused;
  static inline int logs = 0;
  static constexpr int kSafety = 200;  // without a limit, stop here rather than overflow
  static void log(const char*) {
    if (++logs >= kSafety) return;
    static const packet again{};
    auto r = event->raise(&again, nullptr, 0);
    for (auto& f : r.failed) refused.push_back(f.error);
  }
};

TEST(DomainNesting, AnExtensionHandlerWhoseServiceReRaisesItsEventHitsTheLimit) {
  ward::Event<bool(const packet*, const std::uint8_t*, std::size_t), ward::combine::all_true> ev("packet received",
                                                                                                   "netstack");
  Reentrant::event = &ev;
  Reentrant::refused.clear();
  Reentrant::logs = 0;
  static constexpr pkt_host kHost{&Reentrant::log};
  auto pol = ward::Policy::builder().timeout(5s).grant("pkt_host").build();
  ASSERT_TRUE(pol);
  auto p = ward::Instance<pktfilter_api>::load(std::string(WARD_PLUGIN_DIR) + "/hostile/libiface_reentrant.so",
                                              "pktfilter_entry", *pol);
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_TRUE(p->call<&pktfilter_api::init>(&kHost, std::uint16_t{0}));
  auto b = ev.bind(ward::binder_for(*p, "reentrant"),
                   ward::from_domain<&pktfilter_api::on_packet>(*p, [](int v) { return v == 1; }), {.name = "reentrant"});
  ASSERT_TRUE(b) << b.error().message();

  const packet first{};
  auto r = ev.raise(&first, nullptr, 0);
  EXPECT_TRUE(r.ok()) << r.failed[0].error.message();  // the outermost handler ran and returned
  const unsigned limit = ward::NestingLimits{}.same_event;
  ASSERT_EQ(Reentrant::refused.size(), 1u);  // only the innermost raise was refused
  EXPECT_EQ(Reentrant::refused[0].kind, ward::Errc::limit) << Reentrant::refused[0].message();
  EXPECT_NE(Reentrant::refused[0].detail.find("packet received"), std::string::npos) << Reentrant::refused[0].detail;
  // The extension saw exactly `limit` packets, one per level, and still answers.
  auto seen = p->call<&pktfilter_api::seen>();
  ASSERT_TRUE(seen) << seen.error().message();
  EXPECT_EQ(seen->unverified_value_i_trust_it(), limit);
  b->unbind();
}

}  // namespace
