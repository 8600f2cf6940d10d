// Callbacks across a retry: the record of what a supervised call's callbacks delivered to the
// host, and the journal that matches a later attempt of the same call against it, so a host
// callback the failed attempt already ran is not run twice (docs/annotations.md, "Callbacks
// across a retry", says which guarantee applies when).
//
// Extension<Api>::call (recovery/supervisor.h) keeps one CallbackRecord per call and installs a
// CallbackJournal on its thread around each attempt; the callback dispatcher (iface/stubs.h)
// asks it, for every callback the extension makes in that call, after the arguments are decoded
// and checked (a malformed one is a violation whether or not it would have matched):
//  - while the attempt repeats the record (same callback type, same arguments, same out-buffer
//    sizes: a digest of the host's decoded copies), the host's function is NOT called: the
//    extension gets the result and out data the host gave the first time;
//  - the first callback that differs ends matching: it and everything after it are delivered,
//    and the attempt's Outcome reports the divergence (the record then follows what the host
//    saw: the part matched, then the new deliveries);
//  - callbacks past the end of the record are delivered (the failed attempt never got there).
// A replayed call (ward::replay_after_restart) keeps the record of its first run in the replay
// log and is matched against it the same way each time it is replayed.
//
// What the digest compares: scalars, records and buffers by their bytes (so padding the library
// leaves uninitialised can look like a divergence: the callback is then delivered, never wrongly
// suppressed), strings and string arrays by content, the callback's own registration (host
// function and user data). Values whose identity belongs to one instance (ward::opaque tokens,
// host handles) compare by null / non-null only: a fresh instance hands out fresh ones.
// A callback that returns a host handle (ward::returns_handle) is never recorded nor suppressed:
// the failed instance's handles were released, so its old result would be stale.
//
// Bounds: a record keeps at most kMaxEntries callbacks and kMaxBytes of results and out data
// (the extension decides how many callbacks it makes); a retry that gets past a record cut short
// there cannot tell what the host saw, so it delivers and reports a divergence.
// Threads: callbacks run on the thread of the call in progress (iface/callback.h), so the
// journal is per thread (a stack: a callback that calls into a supervised extension installs
// the inner call's journal over the outer one). A journal applies only to upcalls from the
// domain its attempt runs on; anything else is delivered as usual.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ward/backend/backend.h"
#include "ward/iface/codec.h"

namespace ward::detail {

// What a call's callbacks delivered to the host, in order, across its attempts.
struct CallbackRecord {
  static constexpr std::size_t kMaxEntries = std::size_t{1} << 20;
  static constexpr std::size_t kMaxBytes = std::size_t{64} << 20;
  struct Entry {
    std::uint32_t table = 0;       // the callback type (its table in the domain)
    std::uint64_t digest = 0;      // of the decoded arguments and out-buffer sizes
    std::string result;            // the host function's result: its bytes, or the string it returned
    bool result_null = false;      // a const char * result that was null
    std::vector<std::byte> out;    // the out data it wrote, every out buffer in order
  };
  std::vector<Entry> entries;
  std::size_t bytes = 0;   // results and out data kept
  bool truncated = false;  // past kMaxEntries or kMaxBytes: the rest were not kept
};

// FNV-1a over the host's copies of a callback's arguments; lengths are fed before contents, so
// ("ab", "c") and ("a", "bc") differ.
class ArgDigest {
 public:
  void bytes(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h_ = (h_ ^ b[i]) * 0x100000001b3ull;
  }
  void u64(std::uint64_t v) { bytes(&v, sizeof v); }
  template <class T>
    requires std::is_trivially_copyable_v<T> && (!std::is_pointer_v<T>)
  void add(const T& v) {
    bytes(&v, sizeof v);
  }
  template <class T>
  void add(T* p) {  // an opaque token (one instance's) or a service table (always null here)
    u64(p != nullptr);
  }
  void add(const std::optional<std::string>& s) {
    u64(s ? s->size() : ~0ull);
    if (s) bytes(s->data(), s->size());
  }
  void add(const CallbackTarget& t) {  // field by field: the struct has padding
    u64(t.table);
    u64(reinterpret_cast<std::uintptr_t>(t.fn));
    u64(reinterpret_cast<std::uintptr_t>(t.user));
  }
  template <class H>
    requires requires(const H& h) { h.v.data(); h.null; }
  void add(const H& h) {  // a buffer
    u64(h.null ? ~0ull : h.v.size());
    if (!h.null) bytes(h.v.data(), h.v.size() * sizeof(h.v[0]));
  }
  template <class H>
    requires requires(const H& h) { h.s.size(); h.null; }
  void add(const H& h) {  // a string array
    u64(h.null ? ~0ull : h.s.size());
    for (const auto& s : h.s) add(s);
  }
  [[nodiscard]] std::uint64_t value() const { return h_; }

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ull;
};

// A codec row may say how its held value compares across instances (`digest`); otherwise the
// held copy is compared by its type (ArgDigest::add).
template <class F, std::size_t I, class H>
void digest_param(ArgDigest& d, const H& h) {
  if constexpr (requires { codec_of<F, I>::template digest<F, I>(d, h); }) {
    codec_of<F, I>::template digest<F, I>(d, h);
  } else {
    static_assert(requires { d.add(h); }, "ward: a callback parameter kind without a digest: give its codec row one "
                                          "(iface/callback_journal.h)");
    d.add(h);
  }
}

// Callbacks whose results may be answered from a record (see the file comment).
template <class F>
inline constexpr bool journaled = F::returned_handle.k != Ann::K::returns_handle;

// The host function's result as a record keeps it, and back.
template <class F, class R>
void keep_result(CallbackRecord::Entry& e, const R& r) {
  if constexpr (std::is_pointer_v<R>) {
    e.result_null = r == nullptr;
    if (r) e.result = r;
  } else {
    static_assert(std::is_trivially_copyable_v<R>);
    e.result.assign(reinterpret_cast<const char*>(&r), sizeof r);
  }
}
template <class F>
typename F::ret kept_result(const CallbackRecord::Entry& e) {
  using R = typename F::ret;
  if constexpr (std::is_pointer_v<R>) {
    return e.result_null ? nullptr : e.result.c_str();
  } else {
    R r{};
    std::memcpy(&r, e.result.data(), std::min(sizeof r, e.result.size()));
    return r;
  }
}

class CallbackJournal {
 public:
  // What one attempt did against the record.
  struct Outcome {
    std::size_t suppressed = 0;  // callbacks answered from the record
    std::size_t delivered = 0;   // callbacks the host's function ran for
    bool diverged = false;
    std::string why;             // set when diverged
  };

  // `record` null: a journal that records nothing, installed so that callbacks of a call that is
  // never retried do not land in an enclosing call's record.
  explicit CallbackJournal(CallbackRecord* record) : record_(record) {}
  CallbackJournal(const CallbackJournal&) = delete;
  CallbackJournal& operator=(const CallbackJournal&) = delete;

  // Installs the journal on this thread for its lifetime (restoring the enclosing one after).
  class Scope {
   public:
    explicit Scope(CallbackJournal& j) : j_(j) {
      j_.outer_ = top();
      top() = &j_;
    }
    ~Scope() { top() = j_.outer_; }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    CallbackJournal& j_;
  };

  // An attempt of the call starts on `d`: matching starts again at the beginning of the record.
  void begin(const Domain& d) {
    domain_ = &d;
    cursor_ = 0;
    matching_ = record_ && !record_->entries.empty();
    outcome_ = {};
  }
  // The attempt ended; `completed`: the extension returned (a failed attempt may have stopped
  // anywhere, so stopping short of the record is a divergence only for a completed one).
  Outcome end(bool completed) {
    if (completed && matching_ && cursor_ < record_->entries.size()) {
      diverge("the call made " + std::to_string(cursor_) + " callbacks; the earlier attempt had delivered " +
              std::to_string(record_->entries.size()));
    }
    domain_ = nullptr;
    matching_ = false;
    return std::exchange(outcome_, {});
  }

  // The journal that applies to an upcall from `d` on this thread, if any.
  [[nodiscard]] static CallbackJournal* active(const Domain& d) {
    CallbackJournal* j = top();
    return j && j->record_ && j->domain_ == &d ? j : nullptr;
  }

  // The recorded answer to the next callback, if it repeats the record; null: deliver it.
  [[nodiscard]] const CallbackRecord::Entry* match(std::uint32_t table, std::uint64_t digest) {
    if (!matching_) return nullptr;
    if (cursor_ == record_->entries.size()) {
      matching_ = false;
      if (record_->truncated)
        diverge("the earlier attempt's callbacks past the " + std::to_string(cursor_) +
                " recorded (a record's bounds) are delivered again");
      return nullptr;
    }
    const CallbackRecord::Entry& e = record_->entries[cursor_];
    if (e.table != table || e.digest != digest) {
      diverge("callback " + std::to_string(cursor_ + 1) + " of the " + std::to_string(record_->entries.size()) +
              " the earlier attempt delivered differs");
      return nullptr;
    }
    ++cursor_;
    ++outcome_.suppressed;
    return &e;
  }
  // The host's function ran for a callback: recorded, in case this attempt fails too.
  void delivered(CallbackRecord::Entry e) {
    ++outcome_.delivered;
    const std::size_t bytes = e.result.size() + e.out.size();
    if (record_->truncated || record_->entries.size() == CallbackRecord::kMaxEntries ||
        bytes > CallbackRecord::kMaxBytes - record_->bytes) {
      record_->truncated = true;
    } else {
      record_->bytes += bytes;
      record_->entries.push_back(std::move(e));
    }
    cursor_ = record_->entries.size();
  }

 private:
  static CallbackJournal*& top() {
    thread_local CallbackJournal* t = nullptr;
    return t;
  }
  // From here on the record is what the host saw: the part this attempt repeated, then what it
  // delivers next.
  void diverge(std::string why) {
    matching_ = false;
    if (!outcome_.diverged) outcome_.why = std::move(why);
    outcome_.diverged = true;
    record_->entries.resize(cursor_);
    record_->bytes = 0;
    for (const auto& e : record_->entries) record_->bytes += e.result.size() + e.out.size();
    record_->truncated = false;
  }

  CallbackRecord* record_;
  CallbackJournal* outer_ = nullptr;
  const Domain* domain_ = nullptr;
  std::size_t cursor_ = 0;
  bool matching_ = false;
  Outcome outcome_;
};

}  // namespace ward::detail
