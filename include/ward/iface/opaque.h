// ward::Opaque<T>: what the host holds for a pointer the extension handed out (a library's own
// object: struct sqlite3 *, a void * handle), declared with ward::returns_opaque, ward::opaque(i)
// or ward::out_opaque(i) (interface.h).
//
//   // db *db_create(void); int db_put(db *, const char *); int db_open(const char *, db **);
//   WARD_INTERFACE(db_api, (db_create, ward::returns_opaque), (db_put, ward::opaque(0), ward::cstring(1)),
//                  (db_open, ward::cstring(0), ward::out_opaque(1)));
//   ward::Opaque<db> h = *inst.call<&db_api::db_create>();   // Result<Opaque<db>>
//   if (!h) ...                                              // the library returned NULL
//   inst.call<&db_api::db_put>(h, "x");                      // converts to the db * it takes
//   db* d = nullptr;
//   inst.call<&db_api::db_open>("path", &d);                 // d now holds a token too
//
// Contract:
//  - A token, never an address: the domain keeps token -> (the extension's value, T) in its
//    OpaqueTable (backend/opaque_table.h) and only that value crosses. The extension's value,
//    wild or not, never reaches host code, so it needs no check. Conversion to T * gives the
//    token's bits as a pointer, for passing it back to a call that takes a T *; it is not a host
//    address (dereferencing it faults: it is non-canonical on x86-64).
//  - Checked when passed back, before anything is sent (Errc::misuse): a token the domain never
//    issued (forged, another extension's, another instance's), one issued for another type, or a
//    null one where the parameter is not ward::nullable.
//  - Null: a null pointer from the extension is a null Opaque (`!h`), not an error: C libraries
//    report failure that way and the host decides what it means.
//  - T is the pointee without const/volatile; T may be incomplete or void. The same extension
//    pointer of the same type always gives the same token, so Opaque compares as the pointer.
//  - Lifetime: valid as long as the domain that issued it. Under a Supervisor a token survives a
//    restart if the call that produced it is replayed (ward::replay_after_restart): the replayed
//    call's new pointer is installed under the old token. Other tokens are refused after a
//    restart, with a message saying the instance was restarted.
//  - A value type: copy it freely, from any thread.
//
// Texts (ward::out_text(i), a char ** the library stores a string it allocated in, which the
// caller frees with the library's own free; ward::releases(i) on that free):
//   // int sqlite3_exec(sqlite3 *, const char *, callback, void *, char **errmsg); void sqlite3_free(void *);
//   WARD_LIBRARY(lib, (sqlite3_exec, ..., ward::out_text(4), ward::nullable(4)),
//                (sqlite3_free, ward::opaque(0), ward::nullable(0), ward::releases(0)));
//   char* err = nullptr;
//   (*db)->sqlite3_exec(h, "bad", nullptr, nullptr, &err);   // err: a host copy of the message
//   std::puts(err);                                          // read it like the C string
//   (*db)->sqlite3_free(err);                                // frees the library's string and the copy
//  - The child copies the string into the frame after the call; the host copies it once more,
//    up to its first NUL, and keeps that copy in the domain's OpaqueTable. The host's char *
//    is the copy's address (a real, readable host address) and at the same time the token for
//    the library's pointer: passed to a ward::opaque parameter of type void * or char *, the
//    library receives its own pointer. The bytes are the extension's word (any content).
//  - Null stays null (no error). A cell that does not describe a terminated string in the frame
//    is a violation; a wild or unterminated pointer crashes the extension in its own process.
//  - Lifetime: until a ward::releases call with it succeeds, or the domain ends; under a
//    Supervisor the copy stays readable after a restart, but passing it back is then misuse
//    (stale: the extension's memory went with the old process). Texts are not replayed.
//    Like C's free: after release the address may be reused by a later text.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <type_traits>

namespace ward {

template <class T>
class Opaque {
  static_assert(std::is_same_v<T, std::remove_cv_t<T>>, "ward: Opaque<T> takes the pointee without const or volatile");

 public:
  // The null pointer.
  constexpr Opaque() = default;
  // Wraps a token the host received as a T * (an out_opaque parameter, a host service's
  // argument). Nothing is checked here; the token is checked when it is passed back.
  explicit Opaque(T* token) noexcept : token_(reinterpret_cast<std::uintptr_t>(token)) {}

  // The T * a C signature takes; its value is the token (see the file comment).
  operator T*() const noexcept { return reinterpret_cast<T*>(static_cast<std::uintptr_t>(token_)); }
  constexpr explicit operator bool() const noexcept { return token_ != 0; }
  [[nodiscard]] constexpr std::uint64_t token() const noexcept { return token_; }

  friend constexpr bool operator==(Opaque, Opaque) = default;
  friend constexpr auto operator<=>(Opaque, Opaque) = default;

 private:
  std::uint64_t token_ = 0;
};

}  // namespace ward

template <class T>
struct std::hash<ward::Opaque<T>> {
  std::size_t operator()(ward::Opaque<T> o) const noexcept { return std::hash<std::uint64_t>{}(o.token()); }
};
