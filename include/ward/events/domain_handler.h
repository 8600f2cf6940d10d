// Handlers that live in extensions: bind an extension's exported function to an Event, so that
// raising the event crosses into the extension's domain.
//
//   auto h = ward::from_domain<&pktfilter_api::on_packet>(*filter,      // Instance<Api> or Extension<Api>
//                [](int verdict) { return verdict == 0 || verdict == 1; });   // the verifier
//   auto b = packet_received.bind(ward::binder_for(*filter, "pktfilter"), h, guard);
//
// The extension's result arrives Tainted; the verifier decides whether the raise may use it
// (a rejected value becomes an Errc::bad_data failure of that handler). If the extension fails
// during the call, the handler returns the error: the raise records it in Raised::failed and goes
// on with the other handlers. Bound to a supervised Extension<Api>, the failure is also recovered
// per the supervisor's policy (an idempotent function is retried transparently).
//
// A guard can be the extension's too: ward::guard_from_domain<&api::wants>(ext, project) calls
// the extension with the arguments `project` picks from the event's (a crossing per raise: keep
// such guards for handlers whose work dwarfs a crossing). A guard that cannot get an answer
// (the extension failed) rejects.
#pragma once

#include <concepts>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ward/events/event.h"
#include "ward/iface/instance.h"
#include "ward/recovery/supervisor.h"

namespace ward {

// The identity an extension binds with: its name and its domain (compared by identity by
// authorizers; see Binder).
template <class Ext>
Binder binder_for(Ext& ext, std::string name) {
  return Binder{std::move(name), static_cast<const void*>(&ext)};
}

// A handler calling extension function M with the event's arguments; `verify` turns the tainted
// result into what the event returns: either a bool predicate (the value passes through when it
// holds) or a function returning Result<T>.
template <auto M, class Ext, class Verify>
auto from_domain(Ext& ext, Verify verify) {
  return [&ext, verify = std::move(verify)](auto&... args) {
    auto r = ext.template call<M>(args...);
    using Tn = std::remove_cvref_t<decltype(*r)>;  // Tainted<T>
    using T = std::remove_cvref_t<decltype(std::declval<const Tn&>().unverified_value_i_trust_it())>;
    if constexpr (std::is_same_v<std::invoke_result_t<Verify&, const T&>, bool>) {
      using Out = Result<T>;
      if (!r) return Out(std::unexpected(r.error()));
      return Out(std::move(*r).verify(verify, "a handler's result"));
    } else {
      using Out = std::invoke_result_t<Verify&, const T&>;
      if (!r) return Out(std::unexpected(r.error()));
      return r->copy_and_verify(verify);
    }
  };
}

// A handler for an extension function returning void.
template <auto M, class Ext>
auto from_domain(Ext& ext) {
  return [&ext](auto&... args) -> Result<void> {
    WARD_TRY(ext.template call<M>(args...));
    return {};
  };
}

// A guard answered by the extension: `project` maps the event's arguments to M's arguments (as a
// tuple); M's result is true when non-zero.
template <auto M, class Ext, class Project>
auto guard_from_domain(Ext& ext, Project project) {
  return [&ext, project = std::move(project)](const auto&... args) -> bool {
    auto r = std::apply([&](auto&&... a) { return ext.template call<M>(a...); }, project(args...));
    return r && r->unverified_value_i_trust_it() != 0;
  };
}

}  // namespace ward
