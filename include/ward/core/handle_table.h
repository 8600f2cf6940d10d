// HandleTable: the object tracker of one domain, after Zircon's handle table.
//
// Every host object an extension holds (a buffer, a descriptor, a session, a lock held on its
// behalf, a timer, a subscription: anything with a release action) reaches it only as a
// Handle: a 64-bit value encoding slot index + generation, passed through a keyed permutation
// with a per-table secret, so values cannot be forged, guessed or derived from one another.
// Each entry has a type and rights; duplicates can only have fewer rights.
//
// Lookups fail in a fixed order: bad handle (not a value this table issued, or already closed)
// -> wrong type -> missing right. The caller (the crossing) turns a failure into a policy
// violation of the extension.
//
// Generations never wrap: a slot that has used up its generations (2^24 - 1 of them, each one
// close, revocation or release_all of a handle in it) is retired, never reused, so no value the
// table issued can name a live handle again once closed. To keep memory bounded the table holds
// at most twice its quota of slots (and at most 2^24, the index space); a table whose free slots
// have all retired refuses grants with Errc::limit ("... slots retired") even below its quota.
// Wearing out a table of quota Q takes at least Q * 2^24 grants; the extension is then restarted
// with a fresh domain and table like after any other limit.
//
// Release hooks run exactly once: on close, on revocation by the host, or when the whole table
// is released at recovery. Release-all swaps the entries out under the lock and runs the hooks
// outside it, so a hook may itself use the table (or take other locks) without deadlock.
//
// Thread safety: every member function may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "ward/core/error.h"

namespace ward {

using Handle = std::uint64_t;
inline constexpr Handle kInvalidHandle = 0;

// Rights: a bit set; the meaning of each bit is the host's (read, write, map, ...).
using Rights = std::uint32_t;
namespace rights {
inline constexpr Rights read = 1u << 0;
inline constexpr Rights write = 1u << 1;
inline constexpr Rights duplicate = 1u << 2;
inline constexpr Rights transfer = 1u << 3;
inline constexpr Rights all = ~0u;
}  // namespace rights

// Type identity: one tag object per type, and a handle's type is the tag's address. Two types
// never share a tag, so a lookup can never mistake one type for another (a hash of the type's
// name could collide, and a collision would be a type confusion in the cast lookup() makes); and
// the identity does not depend on how a compiler spells type names. It is a constant expression,
// so interface declarations can name the type a handle must have (ward::handle<T>(i, rights)).
// The tag is an inline variable: one per program, across shared objects too (the dynamic linker
// unifies it).
struct HandleTypeTag {
  char unused;
};
using HandleType = const HandleTypeTag*;
template <class T>
inline constexpr HandleTypeTag handle_type_tag{};
template <class T>
consteval HandleType handle_type() {
  return &handle_type_tag<std::remove_cv_t<T>>;
}

class HandleTable {
 public:
  // Generations a slot lasts before it retires: the most the 24-bit encoding allows.
  static constexpr std::uint32_t kMaxGenerations = (1u << 24) - 1;

  // `quota`: the most live handles this table will hold; grant fails with Errc::limit past it.
  // `generations`: how many handles each slot may carry before it retires, clamped to
  // [1, kMaxGenerations]. Fewer only makes slots retire sooner (never unsafe); tests use a small
  // number to wear a table out without 2^24 cycles per slot.
  explicit HandleTable(std::size_t quota = 1024, std::uint32_t generations = kMaxGenerations);
  ~HandleTable();  // releases whatever is left (each hook once)
  HandleTable(const HandleTable&) = delete;
  HandleTable& operator=(const HandleTable&) = delete;

  // Grants `obj` with `r` rights; `release` runs exactly once when the last handle to it goes
  // (close, revoke, release_all). Errors: limit (quota reached).
  template <class T>
  [[nodiscard]] Result<Handle> grant(std::shared_ptr<T> obj, Rights r,
                                     std::type_identity_t<std::function<void(T&)>> release = {}) {
    auto rel = [o = obj, f = std::move(release)]() mutable {
      if (f) f(*o);
    };
    return grant_erased(std::move(obj), handle_type<T>(), r, std::move(rel));
  }

  // The object behind `h` if it is a live handle of type T with all of `required` rights.
  template <class T>
  [[nodiscard]] Result<std::shared_ptr<T>> lookup(Handle h, Rights required) const {
    return std::static_pointer_cast<T>(WARD_TRY(lookup_erased(h, handle_type<T>(), required)));
  }
  // Checks `h` without returning the object (the check a crossing makes).
  [[nodiscard]] Result<void> check(Handle h, HandleType type, Rights required) const;

  // A new handle to the same object with rights `r & mask` (never more). Needs rights::duplicate.
  [[nodiscard]] Result<Handle> duplicate(Handle h, Rights mask);
  // Closes one handle; the object's release hook runs when its last handle is closed.
  [[nodiscard]] Result<void> close(Handle h);
  // The host takes an object back: closes `h` and every duplicate of it.
  [[nodiscard]] Result<void> revoke(Handle h);
  // Recovery: closes everything; returns how many objects were released.
  std::size_t release_all();

  [[nodiscard]] std::size_t live_handles() const;
  [[nodiscard]] std::size_t live_objects() const;
  [[nodiscard]] std::size_t quota() const { return quota_; }
  // Objects released over the table's lifetime (for leak accounting).
  [[nodiscard]] std::uint64_t released_total() const { return released_.load(); }
  [[nodiscard]] std::uint64_t granted_total() const { return granted_.load(); }

 private:
  struct Object;
  struct Slot {
    std::uint32_t generation = 1;  // 1..generations_; the value of the handle in it, if used
    bool used = false;
    bool retired = false;  // generations used up: never reused
    HandleType type = nullptr;
    Rights rights = 0;
    std::shared_ptr<Object> object;
  };
  [[nodiscard]] Result<Handle> grant_erased(std::shared_ptr<void> obj, HandleType type, Rights r,
                                            std::function<void()> release);
  [[nodiscard]] Result<std::shared_ptr<void>> lookup_erased(Handle h, HandleType type, Rights required) const;
  // The slot a live handle names, or "bad handle". Caller holds mu_.
  [[nodiscard]] Result<std::uint32_t> find_locked(Handle h) const;
  [[nodiscard]] Result<Handle> insert_locked(std::shared_ptr<Object> obj, HandleType type, Rights r);
  [[nodiscard]] Handle encode(std::uint32_t index, std::uint32_t generation) const;
  [[nodiscard]] bool decode(Handle h, std::uint32_t& index, std::uint32_t& generation) const;
  void drop_locked(std::uint32_t index, std::vector<std::shared_ptr<Object>>& released);
  // An unused slot goes back on the free list with its next generation, or retires.
  void recycle_locked(std::uint32_t index);
  static void run_releases(std::vector<std::shared_ptr<Object>>& released, std::atomic<std::uint64_t>& count);

  mutable std::mutex mu_;
  std::vector<Slot> slots_;         // never more than max_slots_
  std::vector<std::uint32_t> free_;  // unused, unretired slots; the last is reused first
  std::size_t live_ = 0;
  std::size_t retired_ = 0;
  std::size_t quota_;
  std::size_t max_slots_;
  std::uint32_t generations_;
  std::uint64_t key_[4];
  std::atomic<std::uint64_t> granted_{0};
  std::atomic<std::uint64_t> released_{0};
};

}  // namespace ward
