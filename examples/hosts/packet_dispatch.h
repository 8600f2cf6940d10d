// SPIN's classic, on ward: a packet-dispatch host. Raising "packet received" is calling every
// handler whose guard accepts the packet; the verdicts combine with all_true (one drop drops the
// packet). Handlers bind at run time: two local ones (a TCP counter, a DNS responder) and a
// plain-C packet filter running in a sandboxed process domain under a supervisor. The stack owns
// the event and authorizes every bind: extensions may bind, but only with the stack's own guard
// imposed on them (they never see management-network traffic), and a binder calling itself
// "root" is refused.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "interfaces.h"
#include "ward/events/combine.h"
#include "ward/events/domain_handler.h"
#include "ward/events/event.h"
#include "ward/recovery/supervisor.h"

namespace example {

inline bool management(const packet* p) { return (p->src_addr >> 24) == 10; }  // 10.0.0.0/8

class PacketStack {
 public:
  using Received = ward::Event<bool(const packet*, const std::uint8_t*, std::size_t), ward::combine::all_true>;

  PacketStack()
      : received_("packet received", "netstack", [](const ward::Binder& who, const ward::BindOptions&) {
          ward::Authorization<const packet*, const std::uint8_t*, std::size_t> a;
          if (who.name == "root") {
            a.allowed = false;
            a.reason = "netstack does not let anyone bind as root";
          } else if (who.domain != nullptr) {
            // Extensions run with the owner's guard ANDed to their own.
            a.imposed_guard = [](const packet* p, const std::uint8_t*, std::size_t) { return !management(p); };
          }
          return a;
        }) {}

  Received& received() { return received_; }

  // The host's own handlers.
  ward::Result<void> bind_local_handlers() {
    auto tcp = received_.bind(
        {"tcp-counter"}, [this](const packet*, const std::uint8_t*, std::size_t) { ++tcp_; return true; },
        [](const packet* p, const std::uint8_t*, std::size_t) { return p->proto == PKT_TCP; }, {.name = "tcp-counter"});
    if (!tcp) return std::unexpected(tcp.error());
    auto dns = received_.bind(
        {"dns"}, [this](const packet*, const std::uint8_t*, std::size_t) { ++dns_; return true; },
        [](const packet* p, const std::uint8_t*, std::size_t) { return p->proto == PKT_UDP && p->dst_port == 53; },
        {.name = "dns", .order = ward::Order::first});
    if (!dns) return std::unexpected(dns.error());
    bindings_.push_back(std::move(*tcp));
    bindings_.push_back(std::move(*dns));
    return {};
  }

  // The packet filter extension, bound with its own guard (TCP and UDP only; checked on the
  // host side: a guard that crosses into the domain per raise is possible, see
  // ward::guard_from_domain, but this one is cheap enough to state here).
  ward::Result<void> bind_filter(ward::Extension<pktfilter_api>& filter) {
    auto b = received_.bind(ward::binder_for(filter, "pktfilter"),
                            ward::from_domain<&pktfilter_api::on_packet>(
                                filter, [](int verdict) -> ward::Result<bool> {
                                  if (verdict != 0 && verdict != 1)
                                    return ward::fail(ward::Errc::bad_data, "verdict " + std::to_string(verdict));
                                  return verdict == 1;
                                }),
                            [](const packet* p, const std::uint8_t*, std::size_t) {
                              return p->proto == PKT_TCP || p->proto == PKT_UDP;
                            },
                            {.name = "pktfilter"});
    if (!b) return std::unexpected(b.error());
    bindings_.push_back(std::move(*b));
    return {};
  }

  long tcp_count() const { return tcp_.load(); }
  long dns_count() const { return dns_.load(); }

 private:
  Received received_;
  std::vector<ward::Binding> bindings_;
  std::atomic<long> tcp_{0}, dns_{0};
};

}  // namespace example
