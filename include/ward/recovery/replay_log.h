// The supervisor's memory of an extension's state (the shadow driver's log): what it needs to
// bring a fresh instance back to where the host left the failed one.
//
//  - ReplayLog: the completed calls the interface marks ward::replay_after_restart, in order,
//    each as a closure over deep copies of its arguments (codec.h, capture_args); ward::replay_latest
//    keeps only the most recent call of its function.
//  - Values the extension issued that the host holds across restarts: opaque pointers
//    (ward::opaque, iface/opaque.h) and, under a Supervisor, extension handles
//    (ward::returns_ext_handle) are both tokens in the current domain's OpaqueTable
//    (backend/opaque_table.h), one mechanism. A fresh domain inherits its predecessor's tokens as
//    stale; each replayed call installs what it produced now under the token the host already
//    holds (OpaqueTable::adopt), so exactly the tokens of replayed calls come back to life.
//
// The log does not lock: the recovery core (detail/recovery_core.h) owns it and guards it with
// its lock. Extension<Api> (supervisor.h) records the entries; the core replays them.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "ward/iface/instance.h"

namespace ward {
namespace detail {

class LiveInstance;  // detail/recovery_core.h: a running instance, whatever its interface

// The token type of extension handles in the OpaqueTable (they have no C type of their own).
struct ExtHandleTag;
inline constexpr HandleType ext_handle_type = handle_type<ExtHandleTag>();

// Replaces every ext_handle argument of F in `args` (the token the host holds) by the current
// instance's real value; misuse if the host passes a value it was never given (or one a restart
// lost). 0 passes as 0: the extension's own "no handle".
template <class F, class Args, std::size_t... I>
Result<void> translate_ext_handles(Args& args, const OpaqueTable& tokens, std::index_sequence<I...>) {
  Result<void> ok{};
  (
      [&] {
        if constexpr (F::template is_ext_handle<I>) {
          auto& v = std::get<I>(args);
          if (!ok || v == 0) return;
          auto real = tokens.value_of(static_cast<std::uint64_t>(v), ext_handle_type, "extension handle");
          if (!real) ok = fail(Errc::misuse, "parameter " + std::to_string(I) + ": " + real.error().detail);
          else v = static_cast<std::remove_cvref_t<decltype(v)>>(*real);
        }
      }(),
      ...);
  return ok;
}

// The tokens F's out_opaque parameters hold after a call (0 where none), read from `args`.
template <class F, class Args, std::size_t... I>
std::array<std::uint64_t, F::arity> out_tokens(const Args& args, std::index_sequence<I...>) {
  std::array<std::uint64_t, F::arity> t{};
  (void)args;  // functions without parameters
  (
      [&] {
        if constexpr (param_kind<F, I>() == ParamKind::out_opaque) {
          if (const auto p = std::get<I>(args)) t[I] = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(*p));
        }
      }(),
      ...);
  return t;
}

class ReplayLog {
 public:
  struct Entry {
    std::uint32_t fn;  // the function's index in its interface, for replay_latest
    // Sends the call again to a fresh instance, installing the tokens it produces under the old ones.
    std::function<Result<void>(LiveInstance&)> replay;
    // [object] 0 for the extension's own functions; an object call's object token
    // (iface/object.h): replay_latest keeps the latest call per function and object.
    std::uint64_t scope = 0;
    // [object] The token of the descriptor the call returned, or 0. A call that returns one an
    // earlier entry re-creates is not logged again (that entry runs first, in its place).
    std::uint64_t product = 0;
  };

  void record(Entry e, bool latest_only) {
    if (e.product && std::ranges::any_of(entries_, [&](const Entry& x) { return x.product == e.product; })) return;
    if (latest_only) std::erase_if(entries_, [&](const Entry& x) { return x.fn == e.fn && x.scope == e.scope; });
    entries_.push_back(std::move(e));
  }
  [[nodiscard]] const std::vector<Entry>& entries() const { return entries_; }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }

 private:
  std::vector<Entry> entries_;
};

}  // namespace detail
}  // namespace ward
