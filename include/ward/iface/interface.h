// Interface declarations: one per C ABI, from which ward derives the stubs for both directions.
//
//   WARD_INTERFACE(filter_api,
//       (init,  ward::services(0), ward::cstring(1), ward::replay_after_restart),
//       (apply, ward::in(0, 1), ward::out(2, 3), ward::idempotent));
//   WARD_INTERFACE(host_api, (log, ward::cstring(0)), (open_buffer));
//
// Each entry names a function-pointer member of the C struct and annotates its parameters by
// index (0-based):
//   ward::in(i) / out(i) / inout(i)        pointer to one element (a struct or a scalar)
//   ward::in(i, n) / out(i, n) / inout(i, n) pointer to an array whose element count is
//                                          parameter n (an integer); void pointers count bytes
//   ward::in/out/inout(i, size)            the count as a ward::Size (size.h): arg(j), deref(j)
//                                          (*param_j), elems(64), field<&S::len>(j), products
//   ward::out/inout(i, size).filled(s)     only s elements hold data after the call:
//                                          deref(j) (checked <= capacity) or ward::result
//   ward::cstring(i)                       const char *, NUL-terminated, copied in
//   ward::services(i)                      pointer to a host service table (its own
//                                          WARD_INTERFACE); the extension receives stubs that
//                                          cross back into the host
//   ward::nullable(i)                      the pointer may be null (otherwise null is an error)
//   ward::handle<T>(i, rights)             a 64-bit handle to a host object of type T
//                                          (handle_table.h), checked at every crossing
//   ward::strings(i, n) / strings(i)       char ** / const char **: n strings (parameter n;
//                                          elements may be NULL), or up to a NULL element
//   ward::callback(i, ud)                  a C callback declared with WARD_CALLBACK, with its
//                                          void *user data in parameter ud (iface/callback.h)
//   ward::user_data(k)                     in WARD_CALLBACK only: parameter k carries the user data
//   ward::shared(i) / shared(i, n)         pointer into a live sandbox allocation (iface/sandbox.h),
//                                          checked and passed in place (memory the extension keeps)
//   ward::handlers(i, ud)                  a struct of C callbacks declared with WARD_HANDLERS (a SAX
//                                          handler), its void *user data in parameter ud
//                                          (iface/handlers.h)
// and the function as a whole:
//   ward::returns_string                   the const char * result is a string (copied out)
//   ward::returns_handle<T>(rights)        the 64-bit result is a handle, checked likewise
//   ward::ext_handle(i), ward::returns_ext_handle   a 64-bit value the extension issued; a
//                                          Supervisor keeps it valid across restarts
//   ward::opaque(i), ward::returns_opaque, ward::out_opaque(i)   a T * the extension hands out
//                                          (T may be incomplete or void; out_opaque: a T ** it
//                                          fills): the host holds a typed token (iface/opaque.h)
//   ward::returns_deep                     [deep] the const T * result points to a WARD_STRUCT
//                                          descriptor: deep-copied to a ward::Deep<T> (deep.h);
//                                          an out(i) T * of such a T is deep-copied back likewise
//   ward::self(i)                          [deep] in a descriptor's own WARD_INTERFACE: parameter
//                                          i is the descriptor it is called through (object.h)
//   ward::out_text(i)                      a char ** the library stores a string it allocated in
//                                          (sqlite3_exec's errmsg): the host's char * receives a
//                                          host-owned copy that is also an opaque token for the
//                                          library's pointer, to pass to its free (iface/opaque.h, "Texts")
//   ward::releases(i)                      opaque parameter i is freed by the call: its token (or
//                                          out_text copy) is dropped once the call succeeded
//   ward::sentinel(i)                      a function pointer that is only ever a constant the
//                                          library defines (SQLITE_TRANSIENT), passed as its bits
//   ward::idempotent                       safe to retry after a restart
//   ward::replay_after_restart / replay_latest   state-setting: replayed after a restart
//   ward::replay_by_key(i, ...)            state-setting, and only the latest call per value of
//                                          parameters i, ... is replayed (put(table, key, ...))
//   ward::cancels<&api::f>(i, ...)         a logged call that undoes the logged f calls whose key
//                                          equals parameters i, ... (del(table, key) for put)
// Scalars (integers, floating point, enums, bool) and trivially copyable structs by value need
// no annotation. A pointer without one does not compile. WARD_INTERFACE goes at global scope.
//
// Values from the extension with invalid bit patterns (iface/values.h has the whole contract):
// every bool, wherever it sits (a result, a record, an array inside a buffer element), reaches
// host code as 0 or 1. An enum is checked against the range the host declares for it,
//   template <> struct ward::enum_range<color> { static constexpr color min = RED, max = BLUE; };
// and refused outside it (bad_data for results and out data, a violation for host-service
// arguments). An enum from a C header (no fixed underlying type) needs that declaration: without
// it the interface does not compile, because ward cannot tell its valid values from undefined
// ones. An enum with a fixed underlying type and no declared range passes any value of that
// type. A union, or another type ward cannot look into, needs
// ward::all_bit_patterns_valid<T> = true.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ward/iface/detail/reflect.h"
#include "ward/iface/size.h"
#include "ward/iface/values.h"
#include "ward/core/schema.h"
#include "ward/core/handle_table.h"

namespace ward {

namespace detail {
// Names a function in an annotation (ward::cancels). Compared by content, not by address: the
// addresses of two inline variables are not constant expressions everywhere (GCC with
// sanitizers), the text the compiler gives each instantiation is.
struct FnTag {
  std::string_view id;
};
template <auto M>
consteval std::string_view fn_id() {
  return __PRETTY_FUNCTION__;
}
template <auto M>
inline constexpr FnTag fn_tag{fn_id<M>()};
}  // namespace detail

struct Ann {
  enum class K : std::uint8_t {
    in, out, inout, cstring, services, nullable, handle, ext_handle,                    // per parameter
    idempotent, replay, replay_latest, returns_string, returns_handle, returns_ext_handle,  // per function
    // [opaque] opaque pointers (iface/opaque.h): opaque, out_opaque per parameter; returns_opaque
    opaque, out_opaque, returns_opaque,
    // [callbacks] per parameter; `peer` names the parameter they go with (iface/callback.h)
    callback,   // a WARD_CALLBACK function pointer; peer: its user-data parameter
    user_data,  // the void * a callback's registration travels in (peer: the callback, if any)
    strings,    // char ** / const char **; peer: the count parameter, 0xff: NULL-terminated
    // [sandbox] per parameter: a pointer into sandbox memory, passed in place (iface/sandbox.h)
    shared,
    // [deep] descriptors (iface/deep.h, object.h): self per parameter; returns_deep per function
    self, returns_deep,
    // [sqlite] out_text: a char ** the library fills with a string it allocated (iface/opaque.h, "Texts");
    // releases: a flag, like nullable: the call frees opaque parameter `index`
    out_text, releases,
    sentinel,  // a function pointer the library defines as a constant (SQLITE_TRANSIENT): its bits
    // [handlers] per parameter: a struct of callbacks (WARD_HANDLERS); peer: its user-data
    // parameter (iface/handlers.h)
    handlers,
    // [compaction] per function (recovery/replay_log.h): keys names parameters by a bit mask;
    // cancels also names the function it undoes (target)
    replay_by_key, cancels,
  };
  K k;
  std::uint8_t index = 0xff;
  Size count{};     // buffers: how many elements (size.h); none given: one element
  Size produced{};  // out/inout buffers: how many hold data after the call (.filled)
  HandleType type = nullptr;  // handles: ward::handle_type<T>()
  std::uint32_t rights = 0;  // handles: rights the handle must carry
  std::uint8_t peer = 0xff;  // callback, user_data, strings: the other parameter (see K)
  // replay_by_key, cancels: the key parameters (bit i: parameter i; bit 31: an index past 30)
  // and how many indexes were written (more than the bits set: one named twice).
  std::uint32_t keys = 0;
  std::uint8_t nkeys = 0;
  const detail::FnTag* target = nullptr;  // cancels: &detail::fn_tag<&api::f>
  constexpr bool per_function() const {
    return k == K::idempotent || k == K::replay || k == K::replay_latest || k == K::returns_string ||
           k == K::returns_handle || k == K::returns_ext_handle || k == K::returns_opaque || k == K::returns_deep ||
           k == K::replay_by_key || k == K::cancels;
  }
  // Out data of which only part is valid after the call: ward::deref(j) or ward::result (size.h).
  constexpr Ann filled(Size s) const {
    Ann a = *this;
    a.produced = s;
    return a;
  }
};

constexpr Ann in(std::uint8_t i) { return {.k = Ann::K::in, .index = i}; }
constexpr Ann in(std::uint8_t i, Size count) { return {.k = Ann::K::in, .index = i, .count = count}; }
constexpr Ann in(std::uint8_t i, std::uint8_t count) { return in(i, arg(count)); }
constexpr Ann out(std::uint8_t i) { return {.k = Ann::K::out, .index = i}; }
constexpr Ann out(std::uint8_t i, Size count) { return {.k = Ann::K::out, .index = i, .count = count}; }
constexpr Ann out(std::uint8_t i, std::uint8_t count) { return out(i, arg(count)); }
constexpr Ann inout(std::uint8_t i) { return {.k = Ann::K::inout, .index = i}; }
constexpr Ann inout(std::uint8_t i, Size count) { return {.k = Ann::K::inout, .index = i, .count = count}; }
constexpr Ann inout(std::uint8_t i, std::uint8_t count) { return inout(i, arg(count)); }
constexpr Ann cstring(std::uint8_t i) { return {.k = Ann::K::cstring, .index = i}; }
constexpr Ann services(std::uint8_t i) { return {.k = Ann::K::services, .index = i}; }
constexpr Ann nullable(std::uint8_t i) { return {.k = Ann::K::nullable, .index = i}; }
// Parameter i is a handle (a 64-bit integer) to a host object of type T granted to this domain,
// which must carry `required` rights. Checked at every crossing: bad handle, wrong type,
// missing right, in that order.
template <class T>
constexpr Ann handle(std::uint8_t i, Rights required = 0) {
  return {.k = Ann::K::handle, .index = i, .type = handle_type<T>(), .rights = required};
}
// Parameter i is an array of C strings (char ** or const char **): `count` of them, named by
// integer parameter count_index (elements may be NULL), or, without a count, up to the first
// NULL element. The receiving side gets its own copies, NULL-terminated either way.
constexpr Ann strings(std::uint8_t i, std::uint8_t count_index) {
  return Ann{.k = Ann::K::strings, .index = i, .peer = count_index};
}
constexpr Ann strings(std::uint8_t i) { return Ann{.k = Ann::K::strings, .index = i}; }
// The function returns a handle of type T: checked like a handle parameter when the extension
// returns it.
template <class T>
constexpr Ann returns_handle(Rights required = 0) {
  return {.k = Ann::K::returns_handle, .type = handle_type<T>(), .rights = required};
}
// Parameter i / the result is a handle the *extension* issued (a session id, a table id): under a
// Supervisor the host sees stable values that keep working across restarts (see supervisor.h).
constexpr Ann ext_handle(std::uint8_t i) { return {.k = Ann::K::ext_handle, .index = i}; }
inline constexpr Ann returns_ext_handle{.k = Ann::K::returns_ext_handle};
inline constexpr Ann idempotent{.k = Ann::K::idempotent};
// State-setting: after a restart the supervisor replays every such call, in order, with its
// original arguments. replay_latest keeps only the most recent call of the function.
inline constexpr Ann replay_after_restart{.k = Ann::K::replay};
inline constexpr Ann replay_latest{.k = Ann::K::replay_latest};
namespace detail {
template <class... I>
constexpr Ann key_ann(Ann a, I... i) {
  static_assert((std::is_integral_v<I> && ...), "ward: key parameters are named by their 0-based index");
  ((a.keys |= (static_cast<unsigned long long>(i) < 31 ? 1u << i : 1u << 31)), ...);
  a.nkeys = static_cast<std::uint8_t>(sizeof...(I));
  return a;
}
}  // namespace detail
// Compaction of the replay log (recovery/replay_log.h; docs/architecture.md, "What the log
// holds"). replay_by_key(i, ...): logged like replay_after_restart, but a call replaces the
// logged calls of the same function (and object) whose parameters i, ... hold the same values:
// only the latest put(table, key, value) per (table, key) is replayed. No indexes: the latest
// call of the function (replay_latest). Declaring it says that the call sets the state under its
// key wholly, whatever was there, and that no other logged call reads that state.
// Key parameters: integers, enums, bool, extension handles, opaque pointers (by token), C
// strings (by content).
template <class... I>
constexpr Ann replay_by_key(I... i) {
  return detail::key_ann(Ann{.k = Ann::K::replay_by_key}, i...);
}
// cancels<&api::f>(i, ...): f is a replay_by_key function of the same interface; this call, once
// it succeeded, drops the logged f calls whose key equals this call's parameters i, ... (in
// order, against f's key parameters in order). If it dropped one it is not logged itself (put
// then del leaves nothing to replay); if it found none it is logged, the latest per key, since
// it may undo state the log does not hold as an f call (set by init, say), which a replay
// without it would bring back. Declaring it says that f then this call leaves the extension as
// it was before f.
template <auto M, class... I>
constexpr Ann cancels(I... i) {
  Ann a = detail::key_ann(Ann{.k = Ann::K::cancels}, i...);
  a.target = &detail::fn_tag<M>;
  return a;
}
inline constexpr Ann returns_string{.k = Ann::K::returns_string};
// Parameter i / the result / what the T ** parameter i points to is a pointer the extension
// hands out and the host only passes back: the host holds a ward::Opaque<T> token (opaque.h).
constexpr Ann opaque(std::uint8_t i) { return Ann{.k = Ann::K::opaque, .index = i}; }
constexpr Ann out_opaque(std::uint8_t i) { return Ann{.k = Ann::K::out_opaque, .index = i}; }
inline constexpr Ann returns_opaque{.k = Ann::K::returns_opaque};
// Parameter i points into a live sandbox allocation (iface/sandbox.h) with room for one element,
// or for `count` elements (a size, size.h, or the index of an integer parameter); passed in place, never
// copied. Anything else the host passes is misuse. For memory the library keeps, and structs
// that hold pointers into sandbox memory (a stream's buffers).
constexpr Ann shared(std::uint8_t i) { return Ann{.k = Ann::K::shared, .index = i}; }
constexpr Ann shared(std::uint8_t i, Size count) { return Ann{.k = Ann::K::shared, .index = i, .count = count}; }
constexpr Ann shared(std::uint8_t i, std::uint8_t count) { return shared(i, arg(count)); }
// [deep] The result is a `const T *` to a WARD_STRUCT type: deep-copied to the host (deep.h).
inline constexpr Ann returns_deep{.k = Ann::K::returns_deep};
// [deep] In a descriptor's function called through ward::Object<T> (object.h), parameter i is the
// descriptor itself (LADSPA's instantiate(const LADSPA_Descriptor *, ...)): the extension receives
// the object's own address, whatever the host passes.
constexpr Ann self(std::uint8_t i) { return Ann{.k = Ann::K::self, .index = i}; }

// [deep] Specialised by WARD_STRUCT (deep.h): the pointer fields of a C struct.
template <class T>
struct struct_traits;
namespace detail {
template <class T>
concept described = requires { struct_traits<T>::fields; };
}
// Parameter i is a char ** through which the library hands out a string it allocated and the
// caller frees with the library's own free (sqlite3_exec's errmsg). See iface/opaque.h, "Texts".
constexpr Ann out_text(std::uint8_t i) { return Ann{.k = Ann::K::out_text, .index = i}; }
// The call frees what opaque parameter i points to (sqlite3_free, sqlite3_finalize), or closes
// extension handle i (close_table): once it succeeded, the token is dropped (passing it again is
// misuse), and an out_text copy is freed. Under a Supervisor the call is never logged, and it
// drops from the replay log every call that produced the token or took it as a parameter (the
// object is gone: nothing done to it needs replaying).
constexpr Ann releases(std::uint8_t i) { return Ann{.k = Ann::K::releases, .index = i}; }
// Function-pointer parameter i only ever takes a constant the library defines, never code
// (sqlite3_bind_*'s destructor: SQLITE_STATIC 0, SQLITE_TRANSIENT -1): its bits cross as they
// are. A value that could be an address (not within 4095 of 0) is misuse: a host function would
// be a wild pointer in the extension (declare a WARD_CALLBACK for real callbacks).
constexpr Ann sentinel(std::uint8_t i) { return Ann{.k = Ann::K::sentinel, .index = i}; }

// Specialised by WARD_INTERFACE.
template <class Api>
struct interface_traits;

// The call proxy of interface Api for Owner (Instance<Api> or Extension<Api>): one member per
// declared function, named as the function, each calling Owner::call<&Api::name>. Specialised by
// WARD_INTERFACE; reached through Owner's operator->.
template <class Api, class Owner>
struct proxy;

template <class Api>
concept declared_interface = requires { interface_traits<Api>::fns; };

// A C callback type as a one-function host-service table (defined in iface/callback.h).
template <class FnPtr>
struct callback_table;
template <class T>
inline constexpr bool is_callback_table_v = false;
template <class FnPtr>
inline constexpr bool is_callback_table_v<callback_table<FnPtr>> = true;

// A struct of C callbacks declared with WARD_HANDLERS (iface/handlers.h), which specialises this.
template <class H>
inline constexpr bool is_handlers_v = false;
// A table whose functions the host finds by the registration their user data names (callbacks
// and handler structs), not by a service struct set for the domain; no grant covers them.
template <class T>
inline constexpr bool found_by_token_v = is_callback_table_v<T> || is_handlers_v<T>;

// The character types a C string may be made of: char, and unsigned char (libxml2's xmlChar).
template <class C>
inline constexpr bool is_string_char_v = std::is_same_v<std::remove_cv_t<C>, char> ||
                                         std::is_same_v<std::remove_cv_t<C>, unsigned char>;

namespace detail {

template <class M>
struct member_fn;
template <class C, class R, class... A>
struct member_fn<R (*C::*)(A...)> {
  using api = C;
  using ret = R;
  using args = std::tuple<A...>;
  static constexpr std::size_t arity = sizeof...(A);
};
// C headers seen from C++ may declare functions noexcept (glibc's __THROW): same crossing.
template <class C, class R, class... A>
struct member_fn<R (*C::*)(A...) noexcept> : member_fn<R (*C::*)(A...)> {};

template <class T>
inline constexpr bool is_scalar_arg = std::is_arithmetic_v<T> || std::is_enum_v<T>;

template <class T>
inline constexpr bool is_record = std::is_class_v<T> && std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T>;

template <class T>
consteval schema::Kind scalar_kind() {
  using U = std::conditional_t<std::is_enum_v<T>, std::underlying_type<T>, std::type_identity<T>>::type;
  if constexpr (std::is_same_v<U, bool>) return schema::Kind::u8;
  else if constexpr (std::is_same_v<U, float>) return schema::Kind::f32;
  else if constexpr (std::is_same_v<U, double>) return schema::Kind::f64;
  else if constexpr (std::is_floating_point_v<U>) return schema::Kind::void_;  // long double: unsupported
  else if constexpr (sizeof(U) == 1) return std::is_signed_v<U> ? schema::Kind::i8 : schema::Kind::u8;
  else if constexpr (sizeof(U) == 2) return std::is_signed_v<U> ? schema::Kind::i16 : schema::Kind::u16;
  else if constexpr (sizeof(U) == 4) return std::is_signed_v<U> ? schema::Kind::i32 : schema::Kind::u32;
  else if constexpr (sizeof(U) == 8) return std::is_signed_v<U> ? schema::Kind::i64 : schema::Kind::u64;
  else return schema::Kind::void_;
}

consteval schema::Tok kind_tok(schema::Kind k) {
  switch (k) {
    case schema::Kind::i8: return schema::Tok::i8;
    case schema::Kind::u8: return schema::Tok::u8;
    case schema::Kind::i16: return schema::Tok::i16;
    case schema::Kind::u16: return schema::Tok::u16;
    case schema::Kind::i32: return schema::Tok::i32;
    case schema::Kind::u32: return schema::Tok::u32;
    case schema::Kind::i64: return schema::Tok::i64;
    case schema::Kind::u64: return schema::Tok::u64;
    case schema::Kind::f32: return schema::Tok::f32;
    case schema::Kind::f64: return schema::Tok::f64;
    default: return schema::Tok::end;
  }
}

// Layout of a by-value struct: tokens for libffi plus the size and alignment the tokens imply,
// which must match the real type (that catches arrays, bit-fields and unions).
struct Layout {
  schema::Tok toks[schema::kMaxLayout]{};
  std::size_t n = 0;
  std::size_t size = 0;
  std::size_t align = 1;
  bool ok = true;
};

template <class T>
consteval void add_layout(Layout& l, std::size_t& offset, std::size_t& max_align);

template <class... F>
consteval void add_fields(Layout& l, std::size_t& offset, std::size_t& max_align, types<F...>) {
  (add_layout<std::remove_cv_t<F>>(l, offset, max_align), ...);
}

template <class T>
consteval void add_layout(Layout& l, std::size_t& offset, std::size_t& max_align) {
  if (l.n + 2 >= schema::kMaxLayout) {
    l.ok = false;
    return;
  }
  if constexpr (is_scalar_arg<T>) {
    constexpr schema::Tok t = kind_tok(scalar_kind<T>());
    if (t == schema::Tok::end) l.ok = false;
    l.toks[l.n++] = t;
    offset = schema::align_up(offset, alignof(T)) + sizeof(T);
    max_align = std::max(max_align, alignof(T));
  } else if constexpr (is_record<T> && reflectable<T>) {
    if constexpr (field_count<T>() > 16) {
      l.ok = false;
    } else {
      l.toks[l.n++] = schema::Tok::begin;
      std::size_t inner = 0, inner_align = 1;
      add_fields(l, inner, inner_align, field_types<T>{});
      inner = schema::align_up(inner, inner_align);
      if (inner != sizeof(T) || inner_align != alignof(T)) l.ok = false;
      if (l.n + 1 >= schema::kMaxLayout) l.ok = false;
      else l.toks[l.n++] = schema::Tok::close;
      offset = schema::align_up(offset, alignof(T)) + sizeof(T);
      max_align = std::max(max_align, alignof(T));
    }
  } else {
    l.ok = false;
  }
}

template <class T>
consteval Layout layout_of() {
  Layout l;
  std::size_t offset = 0, align = 1;
  add_layout<T>(l, offset, align);
  l.size = sizeof(T);
  l.align = alignof(T);
  return l;
}

template <class T>
consteval bool record_ok() {
  if constexpr (is_record<T>) return layout_of<T>().ok;
  else return true;
}

// What an annotation list says about parameter i.
struct ParamAnn {
  int count = 0;  // how many direction/kind annotations name it (must be 0 or 1)
  Ann ann{.k = Ann::K::nullable};
  bool nullable = false;
  bool releases = false;  // ward::releases(i)
};

template <std::size_t N>
consteval ParamAnn ann_for(const std::array<Ann, N>& anns, std::size_t i) {
  ParamAnn p;
  for (const Ann& a : anns) {
    // ward::callback(j, i) and ward::handlers(j, i) also say what parameter i is: the user data.
    if ((a.k == Ann::K::callback || a.k == Ann::K::handlers) && a.peer == i) {
      ++p.count;
      p.ann = Ann{.k = Ann::K::user_data, .index = static_cast<std::uint8_t>(i), .peer = a.index};
    }
    if (a.index != i) continue;
    if (a.k == Ann::K::nullable) {
      p.nullable = true;
    } else if (a.k == Ann::K::releases) {
      p.releases = true;
    } else if (!a.per_function()) {
      ++p.count;
      p.ann = a;
    }
  }
  return p;
}

template <std::size_t N>
consteval bool has_flag(const std::array<Ann, N>& anns, Ann::K k) {
  for (const Ann& a : anns)
    if (a.k == k) return true;
  return false;
}

template <class P>
using pointee_t = std::remove_cv_t<std::remove_pointer_t<P>>;

// Element type of a buffer parameter: void counts bytes.
template <class P>
using element_t = std::conditional_t<std::is_void_v<pointee_t<P>>, std::byte, pointee_t<P>>;

template <class T>
consteval schema::Param record_param() {
  schema::Param p{};
  p.kind = schema::Kind::record;
  p.size = sizeof(T);
  p.count_arg = 0xff;
  constexpr Layout l = layout_of<T>();
  for (std::size_t i = 0; i < l.n; ++i) p.layout[i] = l.toks[i];
  return p;
}

// The table id of service type S within interface Api (declare.h).
template <class Api, class S>
consteval std::uint32_t service_id();

}  // namespace detail
}  // namespace ward

// What a declaration is checked against (one check per parameter and one for the result), then
// the declaration itself: the Fn records, walking an interface, and WARD_INTERFACE / WARD_LIBRARY.
#include "ward/iface/detail/checks.h"
#include "ward/iface/declare.h"
