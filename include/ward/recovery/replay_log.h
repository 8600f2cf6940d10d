// The supervisor's memory of an extension's state (the shadow driver's log): what it needs to
// bring a fresh instance back to where the host left the failed one.
//
//  - ReplayLog: the completed calls the interface marks ward::replay_after_restart, in order,
//    each as a closure over deep copies of its arguments (codec.h, capture_args); ward::replay_latest
//    keeps only the most recent call of its function.
//  - ExtHandleMap: extension-issued handles (ward::returns_ext_handle) as the host sees them —
//    stable virtual values — to the current instance's real values. A replay builds a fresh map
//    as the calls that created the handles run again; handles not re-created are gone.
//
// Neither locks: the recovery core (detail/recovery_core.h) owns both and guards them with its
// lock. Extension<Api> (supervisor.h) records the entries; the core replays them.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "ward/iface/instance.h"

namespace ward {
namespace detail {

class LiveInstance;  // detail/recovery_core.h: a running instance, whatever its interface

// Virtual ext handle (what the host holds) -> the current instance's real value.
using ExtHandleMap = std::map<std::uint64_t, std::uint64_t>;

// Replaces every ext_handle argument of F in `args` (a virtual value) by the current instance's
// real value; misuse if the host passes a value it was never given (or one a restart lost).
template <class F, class Args, std::size_t... I>
Result<void> translate_ext_handles(Args& args, const ExtHandleMap& x, std::index_sequence<I...>) {
  Result<void> ok{};
  (
      [&] {
        if constexpr (F::template is_ext_handle<I>) {
          auto& v = std::get<I>(args);
          auto it = x.find(static_cast<std::uint64_t>(v));
          if (it == x.end()) {
            if (ok)
              ok = fail(Errc::misuse, "unknown extension handle " + std::to_string(static_cast<std::uint64_t>(v)) +
                                          " for parameter " + std::to_string(I));
          } else {
            v = static_cast<std::remove_cvref_t<decltype(v)>>(it->second);
          }
        }
      }(),
      ...);
  return ok;
}

class ReplayLog {
 public:
  struct Entry {
    std::uint32_t fn;  // the function's index in the interface, for replay_latest
    // Sends the call again to a fresh instance, re-learning the ext handles it returns.
    std::function<Result<void>(LiveInstance&, ExtHandleMap&)> replay;
  };

  void record(Entry e, bool latest_only) {
    if (latest_only) std::erase_if(entries_, [&](const Entry& x) { return x.fn == e.fn; });
    entries_.push_back(std::move(e));
  }
  [[nodiscard]] const std::vector<Entry>& entries() const { return entries_; }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }

 private:
  std::vector<Entry> entries_;
};

}  // namespace detail
}  // namespace ward
