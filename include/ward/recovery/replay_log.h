// The supervisor's memory of an extension's state (the shadow driver's log): what it needs to
// bring a fresh instance back to where the host left the failed one.
//
//  - ReplayLog: the completed calls the interface marks ward::replay_after_restart, in order,
//    each as a closure over deep copies of its arguments (codec.h, capture_args). It holds the
//    live state, not the history (compaction, declared in the interface, interface.h):
//      * replay_by_key(i, ...): a call replaces the logged call of the same function and object
//        with the same key (its parameters i, ...); replay_latest is the key of no parameters;
//      * cancels<&f>(i, ...): a call drops the logged f call with its key, and is then not
//        logged itself; one that found none is logged (the latest per key: it may undo state
//        the log does not hold as an f call);
//      * ward::releases(i): the call that closes an extension handle or frees an opaque
//        pointer drops every logged call that produced that token or took it as a parameter,
//        and is never logged.
//    Each of these is O(1) expected per call (indexes by key and by token), and the log holds
//    one entry per live key, per live handle's calls and per unkeyed call.
//  - Values the extension issued that the host holds across restarts: opaque pointers
//    (ward::opaque, iface/opaque.h) and, under a Supervisor, extension handles
//    (ward::returns_ext_handle) are both tokens in the current domain's OpaqueTable
//    (backend/opaque_table.h), one mechanism. A fresh domain inherits its predecessor's tokens as
//    stale; each replayed call installs what it produced now under the token the host already
//    holds (OpaqueTable::adopt), so exactly the tokens of replayed calls come back to life.
//
// The log does not lock: the recovery core (detail/recovery_core.h) owns it and guards it with
// its lock. supervised_call (detail/supervised_call.h) records the entries; the core replays them.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
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

// The bytes of the key parameters `mask` names in the host's `args` (interface.h,
// ward::replay_by_key): scalars by value (an extension handle's or opaque pointer's token is one),
// C strings by length and content. The same in every instance, so a key outlives restarts.
template <class F, std::uint32_t Mask, class Args, std::size_t... I>
std::string key_bytes(const Args& args, std::index_sequence<I...>) {
  std::string k;
  (void)args;
  (
      [&] {
        if constexpr ((Mask >> I) & 1u) {
          const auto& v = std::get<I>(args);
          if constexpr (param_kind<F, I>() == ParamKind::cstring) {
            const std::size_t n = v ? std::strlen(reinterpret_cast<const char*>(v)) : 0;
            k.append(reinterpret_cast<const char*>(&n), sizeof n);
            k.append(reinterpret_cast<const char*>(v), n);
          } else if constexpr (std::is_pointer_v<std::remove_cvref_t<decltype(v)>>) {
            const auto bits = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(v));
            k.append(reinterpret_cast<const char*>(&bits), sizeof bits);
          } else {
            k.append(reinterpret_cast<const char*>(&v), sizeof v);
          }
        }
      }(),
      ...);
  return k;
}

// The tokens among F's arguments (extension handles, opaque pointers; 0s left out): what a
// ward::releases call on one of them drops the entry for.
template <class F, class Args, std::size_t... I>
std::vector<std::uint64_t> tokens_in(const Args& args, std::index_sequence<I...>) {
  std::vector<std::uint64_t> t;
  (void)args;
  (
      [&] {
        std::uint64_t v = 0;
        if constexpr (F::template is_ext_handle<I>) v = static_cast<std::uint64_t>(std::get<I>(args));
        else if constexpr (param_kind<F, I>() == ParamKind::opaque)
          v = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(std::get<I>(args)));
        if (v) t.push_back(v);
      }(),
      ...);
  return t;
}

class ReplayLog {
 public:
  struct Entry {
    std::uint32_t fn;  // the function's index in its interface
    // Sends the call again to a fresh instance, installing the tokens it produces under the old ones.
    std::function<Result<void>(LiveInstance&)> replay;
    // [object] 0 for the extension's own functions; an object call's object token
    // (iface/object.h): keys are per function and object.
    std::uint64_t scope = 0;
    // [object] The token of the descriptor the call returned, or 0. A call that returns one an
    // earlier entry re-creates is not logged again (that entry runs first, in its place).
    std::uint64_t product = 0;
    // [compaction] keyed: replaces the entry of the same fn, scope and key (replay_by_key).
    bool keyed = false;
    std::string key;
    // Tokens the call took as parameters and the ones it produced (its result, out_opaque
    // parameters): releasing one drops the entry.
    std::vector<std::uint64_t> tokens;
  };
  // What a ward::cancels call drops: the entry of function `fn` (same scope) with key `key`.
  struct Cancel {
    std::uint32_t fn;
    std::string key;
  };
  struct Counts {
    std::uint64_t recorded = 0;  // entries logged
    std::uint64_t dropped = 0;   // entries compaction removed, and calls it did not log
  };

  // Logs `e`, after `cancel` (if any) had its say: a cancel that dropped an entry is not logged.
  void record(Entry e, const Cancel* cancel = nullptr) {
    if (e.product && products_.contains(e.product)) return;
    if (cancel) {
      const std::string target = full_key(cancel->fn, e.scope, cancel->key);
      // A key the last checkpoint holds state for: dropping the entries since leaves that
      // state, which the cancelling call also undid, so it is logged (recovery/checkpoint.h).
      if (erase_key(target) && !pinned_keys_.contains(target)) {
        ++counts_.dropped;
        return;
      }
    }
    std::string k;
    if (e.keyed) {
      k = full_key(e.fn, e.scope, e.key);
      erase_key(k);
    }
    const std::uint64_t seq = next_++;
    if (e.keyed) by_key_.emplace(std::move(k), seq);
    for (std::uint64_t t : e.tokens) by_token_[t].insert(seq);
    if (e.product) products_.insert(e.product);
    entries_.emplace(seq, std::move(e));
    ++counts_.recorded;
  }
  // A ward::releases call closed `token`: drops every entry that produced or took it. True if
  // the token was live at the last checkpoint (recovery/checkpoint.h): the checkpoint holds the
  // object, so the closing call must itself be logged and replayed after a restore.
  bool release(std::uint64_t token) {
    const bool pinned = pinned_.erase(token) != 0;
    if (pinned) released_since_.push_back(token);
    auto it = by_token_.find(token);
    if (it == by_token_.end()) return pinned;
    const std::vector<std::uint64_t> seqs(it->second.begin(), it->second.end());
    for (std::uint64_t seq : seqs) erase(seq);
    by_token_.erase(token);
    return pinned;
  }
  // A checkpoint now holds the state every entry built: they go (counted as dropped), and the
  // tokens live in it (`live`) and the keys set in it are remembered, so that closing one or
  // cancelling one later is logged (release, record). Keys stay remembered across checkpoints
  // (a key with no entry since may still have state in the newest one); at most one per key.
  void checkpointed(std::vector<std::uint64_t> live) {
    counts_.dropped += entries_.size();
    entries_.clear();
    for (const auto& [k, seq] : by_key_) pinned_keys_.insert(k);
    by_key_.clear();
    by_token_.clear();
    products_.clear();
    pinned_ = std::unordered_set<std::uint64_t>(live.begin(), live.end());
    released_since_.clear();
  }
  // Tokens live at the last checkpoint and closed since: a restore brings them back with the
  // checkpoint, the replay of their closing calls closes them, and the recovery then drops them.
  [[nodiscard]] const std::vector<std::uint64_t>& released_since_checkpoint() const { return released_since_; }
  // The entries in the order they were logged (a copy: the core replays it without the lock).
  [[nodiscard]] std::vector<Entry> entries() const {
    std::vector<Entry> out;
    out.reserve(entries_.size());
    for (const auto& [seq, e] : entries_) out.push_back(e);
    return out;
  }
  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  [[nodiscard]] Counts counts() const { return counts_; }

 private:
  static std::string full_key(std::uint32_t fn, std::uint64_t scope, const std::string& key) {
    std::string k(sizeof fn + sizeof scope, '\0');
    std::memcpy(k.data(), &fn, sizeof fn);
    std::memcpy(k.data() + sizeof fn, &scope, sizeof scope);
    return k + key;
  }
  bool erase_key(const std::string& k) {
    auto it = by_key_.find(k);
    if (it == by_key_.end()) return false;
    erase(it->second);
    return true;
  }
  void erase(std::uint64_t seq) {
    auto it = entries_.find(seq);
    if (it == entries_.end()) return;
    const Entry& e = it->second;
    if (e.keyed) by_key_.erase(full_key(e.fn, e.scope, e.key));
    for (std::uint64_t t : e.tokens) {
      auto s = by_token_.find(t);
      if (s == by_token_.end()) continue;
      s->second.erase(seq);
      if (s->second.empty()) by_token_.erase(s);
    }
    if (e.product) products_.erase(e.product);
    entries_.erase(it);
    ++counts_.dropped;
  }

  std::map<std::uint64_t, Entry> entries_;  // by sequence number: the order they were logged
  std::uint64_t next_ = 0;
  std::unordered_map<std::string, std::uint64_t> by_key_;                         // fn, scope, key -> seq
  std::unordered_map<std::uint64_t, std::unordered_set<std::uint64_t>> by_token_;  // token -> seqs
  std::unordered_set<std::uint64_t> products_;
  std::unordered_set<std::uint64_t> pinned_;      // tokens live at the last checkpoint
  std::unordered_set<std::string> pinned_keys_;   // keys the checkpoints hold state for
  std::vector<std::uint64_t> released_since_;     // ... and closed since
  Counts counts_;
};

}  // namespace detail
}  // namespace ward
