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
  };
  K k;
  std::uint8_t index = 0xff;
  Size count{};     // buffers: how many elements (size.h); none given: one element
  Size produced{};  // out/inout buffers: how many hold data after the call (.filled)
  HandleType type = nullptr;  // handles: ward::handle_type<T>()
  std::uint32_t rights = 0;  // handles: rights the handle must carry
  std::uint8_t peer = 0xff;  // callback, user_data, strings: the other parameter (see K)
  constexpr bool per_function() const {
    return k == K::idempotent || k == K::replay || k == K::replay_latest || k == K::returns_string ||
           k == K::returns_handle || k == K::returns_ext_handle || k == K::returns_opaque || k == K::returns_deep;
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
// The call frees what opaque parameter i points to (sqlite3_free, sqlite3_finalize): once it
// succeeded, the token is dropped (passing it again is misuse), and an out_text copy is freed.
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

// A type only a library knows (struct sqlite3 declared, never defined): a pointer to it can only
// be an opaque pointer. void is not one (a void * buffer has a byte count), nor a function type.
template <class T>
concept incomplete_object = !std::is_void_v<T> && !std::is_function_v<T> && !requires { sizeof(T); };
// A pointer that must be declared opaque: T * or T ** with T incomplete.
template <class P>
inline constexpr bool needs_opaque = std::is_pointer_v<P> && (incomplete_object<pointee_t<P>> ||
                                                              (std::is_pointer_v<pointee_t<P>> &&
                                                               incomplete_object<pointee_t<pointee_t<P>>>));

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

// Declared below; the table id of service type S within interface Api.
template <class Api, class S>
consteval std::uint32_t service_id();

// What a size factor (size.h) may read from each parameter of a function.
struct SizeSource {
  bool integer = false;  // an integer by value: ward::arg
  bool int_ptr = false;  // a pointer to integers: ward::deref
  bool pointer = false;
  const SizeTypeTag* record = nullptr;  // the struct it is or points to: ward::field
  Ann::K k = Ann::K::nullable;          // its direction annotation (nullable: none)
  bool one = false;                     // annotated without a count: one element
};

template <class F, std::size_t J>
consteval SizeSource size_source() {
  using P = std::tuple_element_t<J, typename F::args>;
  using E = pointee_t<P>;
  SizeSource s;
  s.integer = std::is_integral_v<P> && !std::is_same_v<P, bool>;
  s.pointer = std::is_pointer_v<P>;
  s.int_ptr = s.pointer && std::is_integral_v<E> && !std::is_same_v<E, bool>;
  if constexpr (std::is_pointer_v<P> && std::is_class_v<E>) s.record = size_type_of<E>();
  else if constexpr (std::is_class_v<P>) s.record = size_type_of<P>();
  constexpr ParamAnn pa = ann_for(F::anns, J);
  if (pa.count == 1) s.k = pa.ann.k;
  s.one = pa.count == 1 && !pa.ann.count.given;
  return s;
}

template <class F>
consteval std::array<SizeSource, F::arity> size_sources() {
  return []<std::size_t... J>(std::index_sequence<J...>) {
    return std::array<SizeSource, F::arity>{size_source<F, J>()...};
  }(std::make_index_sequence<F::arity>{});
}

// The size and the filled count of buffer parameter I: every factor names another parameter
// that can hold what it reads.
template <class F, std::size_t I>
struct CheckSize {
  using K = Ann::K;
  using From = Size::From;
  static constexpr Ann a = ann_for(F::anns, I).ann;
  static constexpr std::array<SizeSource, F::arity> src = size_sources<F>();
  template <class Ok>
  static consteval bool each(const Size& s, From from, Ok ok) {
    for (std::uint8_t k = 0; k < s.n; ++k) {
      const Size::Factor& f = s.factors[k];
      if (f.from != from) continue;
      if (f.index >= F::arity || f.index == I || !ok(f, src[f.index])) return false;
    }
    return true;
  }
  static_assert(each(a.count, From::arg, [](auto, const SizeSource& p) { return p.integer; }),
                "ward: the count index of a buffer annotation must name another parameter of integer type");
  // A count the extension can change (inout) is checked after the call only as the filled count:
  // otherwise the host's object would keep an unchecked size (and a replay would trust it).
  static constexpr bool fills_own_count(std::uint8_t j) {
    return a.produced.n == 1 && a.produced.factors[0].from == From::deref && a.produced.factors[0].index == j;
  }
  static_assert(each(a.count, From::deref,
                     [](const Size::Factor& f, const SizeSource& p) {
                       return p.int_ptr && p.one && (p.k == K::in || (p.k == K::inout && fills_own_count(f.index)));
                     }),
                "ward: ward::deref(j) must name another parameter that points to one integer, annotated ward::in(j), or "
                "ward::inout(j) with .filled(ward::deref(j))");
  static_assert(each(a.count, From::field,
                     [](const Size::Factor& f, const SizeSource& p) {
                       return f.of == p.record && (!p.pointer || p.k == K::in);
                     }),
                "ward: ward::field<&S::member>(j) must name another parameter that is an S by value or points to an S "
                "annotated ward::in(j)");
  static_assert(!a.count.has(From::result),
                "ward: ward::result counts what a call produced: use it in .filled(ward::result), not as a capacity");
  static constexpr Size fl = a.produced;
  static_assert(!fl.given || a.k == K::out || a.k == K::inout, "ward: .filled() is for out and inout buffers");
  static_assert(!fl.given || a.count.given, "ward: .filled() needs the buffer's capacity: ward::out(i, count).filled(...)");
  static_assert(!fl.given || (fl.n == 1 && fl.constant == 1 && !fl.has(From::arg) && !fl.has(From::field)),
                "ward: .filled() takes ward::deref(j) or ward::result");
  static_assert(each(fl, From::deref, [](auto, const SizeSource& p) { return p.int_ptr && p.one && (p.k == K::out || p.k == K::inout); }),
                "ward: .filled(ward::deref(j)) must name another parameter that points to one integer, annotated "
                "ward::out(j) or ward::inout(j)");
  static_assert(!fl.has(From::result) || (std::is_integral_v<typename F::ret> && !std::is_same_v<typename F::ret, bool>),
                "ward: .filled(ward::result) needs a function that returns an integer");
  static constexpr bool value = true;
};

// ---- compile-time checks, one per parameter so the error names the function and the index ----
template <class F, std::size_t I>
struct CheckParam {
  using P = std::tuple_element_t<I, typename F::args>;
  static constexpr ParamAnn pa = ann_for(F::anns, I);
  static constexpr bool is_ptr = std::is_pointer_v<P>;
  static_assert(pa.count <= 1, "ward: a parameter has more than one direction/kind annotation");
  static constexpr bool opaque_ann = pa.count == 1 && (pa.ann.k == Ann::K::opaque || pa.ann.k == Ann::K::out_opaque);
  static_assert(!needs_opaque<P> || opaque_ann,
                "ward: a pointer to an incomplete type (a library's own object, like struct sqlite3 *) can only cross as "
                "an opaque pointer: annotate it with ward::opaque(index), or ward::out_opaque(index) for a T ** the "
                "library fills in");
  static_assert(!is_ptr || needs_opaque<P> || (pa.count == 1 && pa.ann.k != Ann::K::handle && pa.ann.k != Ann::K::ext_handle),
                "ward: a pointer parameter needs a declared direction and size: annotate it with ward::in/out/inout(index), "
                "ward::in/out/inout(index, count_index), ward::cstring(index), ward::strings(index), "
                "ward::services(index), ward::shared(index) for sandbox memory, for a pointer the extension hands out "
                "ward::opaque(index), for a function pointer ward::callback(index, user_data_index), or for a struct "
                "of callbacks ward::handlers(index, user_data_index)");
  static constexpr bool is_handle = pa.count == 1 && (pa.ann.k == Ann::K::handle || pa.ann.k == Ann::K::ext_handle);
  static_assert(!is_handle || (std::is_integral_v<P> && sizeof(P) == 8),
                "ward: a ward::handle parameter must be a 64-bit integer in the C ABI");
  static_assert(is_ptr || is_handle || pa.count == 0,
                "ward: a direction/kind annotation names a parameter that is not a pointer");
  static_assert(is_ptr || !pa.nullable, "ward: ward::nullable names a parameter that is not a pointer");
  static_assert(is_ptr || is_scalar_arg<P> || is_record<P>,
                "ward: a by-value parameter must be an integer, floating point, enum, bool or trivially copyable struct");
  static_assert(!std::is_same_v<P, long double>, "ward: long double is not supported");
  static constexpr bool ok_rec = record_ok<P>();
  static_assert(ok_rec,
                "ward: this struct cannot be passed by value (fields must be scalars or such structs, no arrays, bit-fields or "
                "unions, at most 16 fields); pass it by pointer with ward::in(index)");
  static constexpr bool ok_kind = [] {
    using E = pointee_t<P>;
    if constexpr (!is_ptr) {
      return true;
    } else if constexpr (pa.ann.k == Ann::K::opaque) {
      return !std::is_function_v<E>;
    } else if constexpr (pa.ann.k == Ann::K::out_opaque) {
      return std::is_pointer_v<E> && !std::is_function_v<pointee_t<E>>;
    } else if constexpr (needs_opaque<P>) {
      return true;  // reported above
    } else {
      if (pa.ann.k == Ann::K::cstring) return is_string_char_v<E>;
      if (pa.ann.k == Ann::K::services || pa.ann.k == Ann::K::handlers) return std::is_class_v<E>;
      if (pa.ann.k == Ann::K::self) return true;
      if (pa.ann.k == Ann::K::callback || pa.ann.k == Ann::K::sentinel) return std::is_function_v<E>;
      if (pa.ann.k == Ann::K::user_data) return std::is_void_v<E>;
      if (pa.ann.k == Ann::K::strings)
        return std::is_pointer_v<E> && is_string_char_v<std::remove_pointer_t<E>>;
      if (pa.ann.k == Ann::K::shared) return std::is_void_v<E> || std::is_object_v<E>;  // never copied
      if (pa.ann.k == Ann::K::out_text) return std::is_pointer_v<E> && std::is_same_v<pointee_t<E>, char>;
      return !std::is_pointer_v<E> && (std::is_void_v<E> || std::is_trivially_copyable_v<E>);
    }
  }();
  static_assert(ok_kind,
                "ward: annotation does not fit the pointer type (cstring needs const char * (or const unsigned char *), "
                "strings char ** or const char ** (or unsigned char), services and handlers a struct, callback a "
                "function pointer, its user data void *, buffers a trivially copyable element type, opaque any object "
                "pointer, out_opaque a T **, out_text a char ** or const char **; other pointers to pointers are not "
                "supported)");
  static constexpr bool ok_const = [] {
    if constexpr (!is_ptr) {
      return true;
    } else {
      return !(pa.ann.k == Ann::K::out || pa.ann.k == Ann::K::inout || pa.ann.k == Ann::K::out_opaque ||
               pa.ann.k == Ann::K::out_text) ||
             !std::is_const_v<std::remove_pointer_t<P>>;
    }
  }();
  static_assert(ok_const, "ward: an out or inout parameter cannot point to const");
  // [deep] The host's copy of a described struct holds host pointers: it never crosses in.
  static constexpr bool ok_deep = [] {
    if constexpr (!is_ptr) return true;
    else if constexpr (!described<pointee_t<P>>) return true;
    else return pa.ann.k == Ann::K::out || pa.ann.k == Ann::K::self;
  }();
  static_assert(ok_deep, "ward: a pointer to a WARD_STRUCT type is either ward::out(index) (deep-copied back) or "
                         "ward::self(index) (the descriptor a function was called through)");
  static constexpr bool ok_values = [] {
    if constexpr (!is_ptr) return checkable<P>;
    else if constexpr (pa.count == 1 && (pa.ann.k == Ann::K::services || pa.ann.k == Ann::K::callback ||
                                         pa.ann.k == Ann::K::user_data || pa.ann.k == Ann::K::strings ||
                                         pa.ann.k == Ann::K::shared || pa.ann.k == Ann::K::out_text ||
                                         pa.ann.k == Ann::K::sentinel || pa.ann.k == Ann::K::handlers))
      return true;  // functions, an address, strings, or data the host reads only through Sandboxed::read
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::self) return true;  // never read by the host
    else if constexpr (opaque_ann || needs_opaque<P>) return true;  // never read by the host
    else return checkable<element_t<P>>;
  }();
  static_assert(ok_values,
                "ward: this parameter's type can hold invalid values ward cannot check: declare "
                "ward::enum_range<E> for an enum from a C header, or ward::all_bit_patterns_valid<T> for a union or "
                "other type ward cannot look into (see ward/iface/values.h)");
  static constexpr bool ok_void = [] {
    if constexpr (!is_ptr) {
      return true;
    } else {
      return !std::is_void_v<pointee_t<P>> || pa.ann.count.given || pa.ann.k == Ann::K::services ||
             pa.ann.k == Ann::K::cstring || pa.ann.k == Ann::K::user_data || pa.ann.k == Ann::K::self || opaque_ann;
    }
  }();
  static_assert(ok_void, "ward: a void pointer needs a byte count: ward::in/out/inout(index, count)");
  static_assert(!pa.releases || (pa.count == 1 && pa.ann.k == Ann::K::opaque),
                "ward: ward::releases(i) names a parameter that is not ward::opaque(i)");
  // A buffer's size expressions (size.h), checked only where one is declared (CheckSize's
  // static_asserts name what is wrong).
  static_assert(
      std::conditional_t<is_ptr && (pa.ann.count.given || pa.ann.produced.given), CheckSize<F, I>, std::true_type>::value);
  // [callbacks] the parameter a callback, its user data or a string array names.
  static constexpr bool ok_peer = [] {
    const Ann::K k = pa.ann.k;
    if (pa.count != 1 || (k != Ann::K::callback && k != Ann::K::strings && k != Ann::K::user_data && k != Ann::K::handlers))
      return true;
    if (pa.ann.peer == 0xff) return k != Ann::K::callback && k != Ann::K::handlers;
    if (pa.ann.peer >= F::arity || pa.ann.peer == I) return false;
    return []<std::size_t... J>(std::index_sequence<J...>, std::size_t c, Ann::K kind) {
      return ((J == c && (kind == Ann::K::strings ? std::is_integral_v<std::tuple_element_t<J, typename F::args>> &&
                                                       !std::is_same_v<std::tuple_element_t<J, typename F::args>, bool>
                                                 : std::is_pointer_v<std::tuple_element_t<J, typename F::args>>)) ||
              ...);
    }(std::make_index_sequence<F::arity>{}, pa.ann.peer, k);
  }();
  static_assert(ok_peer,
                "ward: ward::callback(i, ud) and ward::handlers(i, ud) need ud to name another parameter, a void *; "
                "ward::strings(i, n) needs n "
                "to name another parameter of integer type");
  static constexpr bool ok_user_data = pa.count != 1 || pa.ann.k != Ann::K::user_data ||
                                       (pa.ann.peer == 0xff) == found_by_token_v<typename F::api>;
  static_assert(ok_user_data,
                "ward: ward::user_data(k) belongs in a WARD_CALLBACK or WARD_HANDLERS declaration; in a WARD_INTERFACE, "
                "ward::callback(i, ud) or ward::handlers(i, ud) names the user-data parameter");
  static constexpr bool ok_callback = [] {
    if constexpr (pa.count == 1 && pa.ann.k == Ann::K::callback && is_ptr) return declared_interface<callback_table<P>>;
    else return true;
  }();
  static_assert(ok_callback, "ward: this callback type was not declared: add WARD_CALLBACK(type, annotations...) "
                             "before the WARD_INTERFACE that takes it (iface/callback.h)");
  static constexpr bool ok_handlers = [] {
    if constexpr (pa.count == 1 && pa.ann.k == Ann::K::handlers && is_ptr) return is_handlers_v<pointee_t<P>>;
    else return true;
  }();
  static_assert(ok_handlers, "ward: this struct of callbacks was not declared: add WARD_HANDLERS(struct, (field, "
                             "annotations...), ...) before the WARD_INTERFACE that takes it (iface/handlers.h)");
  static constexpr bool value = true;
};

template <class F>
struct CheckRet {
  using R = typename F::ret;
  static constexpr bool str = has_flag(F::anns, Ann::K::returns_string);
  static constexpr bool deep = has_flag(F::anns, Ann::K::returns_deep);
  static constexpr bool opq = has_flag(F::anns, Ann::K::returns_opaque);
  static_assert(!needs_opaque<R> || opq,
                "ward: a function returning a pointer to an incomplete type (a library's own object, like struct "
                "sqlite3 *) returns an opaque pointer: add ward::returns_opaque");
  static_assert(!std::is_pointer_v<R> || needs_opaque<R> || opq || deep ||
                    (str && (std::is_same_v<R, const char*> || std::is_same_v<R, const unsigned char*>)),
                "ward: a function returning a pointer is only supported for strings: declare it const char * and add "
                "ward::returns_string (const unsigned char * too, as sqlite3_column_text returns; or ward::returns_opaque for a pointer the host only passes back)");
  static_assert(!str || std::is_pointer_v<R>, "ward: ward::returns_string on a function that does not return a pointer");
  static_assert(!deep || (std::is_pointer_v<R> && described<pointee_t<R>>),
                "ward: ward::returns_deep needs a result that points to a WARD_STRUCT type (declare the struct with "
                "WARD_STRUCT first)");
  static_assert(!opq || (std::is_pointer_v<R> && !str && !std::is_function_v<std::remove_pointer_t<R>>),
                "ward: ward::returns_opaque on a function that does not return an object pointer (or also returns_string)");
  static constexpr bool handle_ok = [] {
    if (!has_flag(F::anns, Ann::K::returns_handle) && !has_flag(F::anns, Ann::K::returns_ext_handle)) return true;
    if constexpr (std::is_integral_v<R>) return sizeof(R) == 8;
    else return false;
  }();
  static_assert(handle_ok,
                "ward: ward::returns_handle / returns_ext_handle on a function that does not return a 64-bit integer");
  static_assert(std::is_void_v<R> || std::is_pointer_v<R> || is_scalar_arg<R> || is_record<R>,
                "ward: unsupported return type");
  static_assert(!std::is_same_v<R, long double>, "ward: long double is not supported");
  static_assert(record_ok<R>(),
                "ward: this struct cannot be returned by value (fields must be scalars or such structs, no arrays)");
  static constexpr bool ok_values = [] {
    if constexpr (std::is_void_v<R> || std::is_pointer_v<R>) return true;
    else return checkable<R>;
  }();
  static_assert(ok_values,
                "ward: this result's type can hold invalid values ward cannot check: declare ward::enum_range<E> for an "
                "enum from a C header, or ward::all_bit_patterns_valid<T> for a union or other type ward cannot look "
                "into (see ward/iface/values.h)");
  static constexpr bool value = true;
};

template <auto M, Ann... As>
struct Fn {
  using traits = member_fn<decltype(M)>;
  using api = typename traits::api;
  using ret = typename traits::ret;
  using args = typename traits::args;
  static constexpr auto member = M;
  static constexpr std::size_t arity = traits::arity;
  static constexpr std::array<Ann, sizeof...(As)> anns{As...};
  static_assert(arity <= schema::kMaxParams, "ward: at most 12 parameters per function");
  static constexpr bool indexes_ok = [] {
    for (const Ann& a : anns) {
      if (!a.per_function() && a.index >= arity) return false;
    }
    return true;
  }();
  static_assert(indexes_ok, "ward: an annotation names a parameter index past the end of the parameter list");
  static constexpr bool checked = []<std::size_t... I>(std::index_sequence<I...>) {
    return (CheckParam<Fn, I>::value && ... && CheckRet<Fn>::value);
  }(std::make_index_sequence<arity>{});
  static constexpr bool is_idempotent = has_flag(anns, Ann::K::idempotent);
  static constexpr bool replays = has_flag(anns, Ann::K::replay) || has_flag(anns, Ann::K::replay_latest);
  static constexpr bool replays_latest_only = has_flag(anns, Ann::K::replay_latest);
  static constexpr bool returns_ext = has_flag(anns, Ann::K::returns_ext_handle);
  static constexpr bool returns_opq = has_flag(anns, Ann::K::returns_opaque);
  template <std::size_t I>
  static constexpr bool is_ext_handle = [] {
    for (const Ann& a : anns)
      if (a.k == Ann::K::ext_handle && a.index == I) return true;
    return false;
  }();
  static constexpr Ann returned_handle = [] {
    for (const Ann& a : anns)
      if (a.k == Ann::K::returns_handle) return a;
    return Ann{.k = Ann::K::nullable};
  }();

  const char* name;  // "device_api::write"
};

// ---- walking an interface -------------------------------------------------------------------
template <class Api>
using fns_tuple = std::remove_cvref_t<decltype(interface_traits<Api>::fns)>;

template <class Api, auto M, std::size_t I = 0>
consteval std::size_t index_of_fn() {
  using T = fns_tuple<Api>;
  if constexpr (I == std::tuple_size_v<T>) {
    return I;
  } else if constexpr (requires { requires std::tuple_element_t<I, T>::member == M; }) {
    return I;
  } else {
    return index_of_fn<Api, M, I + 1>();
  }
}

template <class... T>
struct type_list {};

template <class L, class T>
struct push_unique;
template <class... Ts, class T>
struct push_unique<type_list<Ts...>, T> {
  using type = std::conditional_t<(std::is_same_v<Ts, T> || ...), type_list<Ts...>, type_list<Ts..., T>>;
};

template <class L, class F, std::size_t I = 0>
struct add_fn_services {
  using P = std::conditional_t<(I < F::arity), std::tuple_element<(I < F::arity ? I : 0), typename F::args>,
                               std::type_identity<void>>::type;
  static constexpr bool svc = [] {
    if constexpr (I < F::arity) return ann_for(F::anns, I).count == 1 && ann_for(F::anns, I).ann.k == Ann::K::services;
    else return false;
  }();
  // A callback's signature is a table of its own (iface/callback.h); a handler struct is one.
  static constexpr bool cb = [] {
    if constexpr (I < F::arity) return ann_for(F::anns, I).count == 1 && ann_for(F::anns, I).ann.k == Ann::K::callback;
    else return false;
  }();
  static constexpr bool hs = [] {
    if constexpr (I < F::arity) return ann_for(F::anns, I).count == 1 && ann_for(F::anns, I).ann.k == Ann::K::handlers;
    else return false;
  }();
  using next = std::conditional_t<svc || hs, push_unique<L, pointee_t<P>>,
                                  std::conditional_t<cb, push_unique<L, callback_table<P>>, std::type_identity<L>>>::type;
  using type = std::conditional_t<(I < F::arity), add_fn_services<next, F, I + 1>, std::type_identity<L>>::type;
};

template <class L, class Tuple, std::size_t I = 0>
struct add_all_services {
  using type = std::conditional_t<
      (I < std::tuple_size_v<Tuple>),
      add_all_services<typename add_fn_services<L, std::tuple_element_t<(I < std::tuple_size_v<Tuple> ? I : 0), Tuple>>::type,
                       Tuple, I + 1>,
      std::type_identity<L>>::type;
};

// The host service tables an interface hands out, in order of first appearance; ids start at 1.
template <class Api>
using services_of = typename add_all_services<type_list<>, fns_tuple<Api>>::type;

template <class S, class... Ts>
consteval std::uint32_t index_in(type_list<Ts...>) {
  constexpr bool same[] = {std::is_same_v<S, Ts>..., false};
  std::uint32_t i = 0;
  while (i < sizeof...(Ts) && !same[i]) ++i;
  return i;
}

template <class Api, class S>
consteval std::uint32_t service_id() {
  return index_in<S>(services_of<Api>{}) + 1;
}

// Byte offset of a function-pointer member inside its struct.
template <auto M>
std::uint32_t member_offset() {
  using C = typename member_fn<decltype(M)>::api;
  alignas(C) static unsigned char storage[sizeof(C)];
  const C* c = reinterpret_cast<const C*>(storage);
  return static_cast<std::uint32_t>(reinterpret_cast<const unsigned char*>(&(c->*M)) - storage);
}

}  // namespace detail

namespace detail {
// The declaration of function M in interface Api, with the checks every typed call makes.
template <class Api, auto M, std::size_t NArgs>
struct declared_fn {
  static constexpr std::size_t index = index_of_fn<Api, M>();
  static_assert(index < std::tuple_size_v<fns_tuple<Api>>, "ward: this function is not declared in the plugin's WARD_INTERFACE");
  using type = std::tuple_element_t<(index < std::tuple_size_v<fns_tuple<Api>> ? index : 0), fns_tuple<Api>>;
  static_assert(NArgs == type::arity, "ward: wrong number of arguments for this plugin function");
};
}  // namespace detail

namespace detail {
// One member of a call proxy: holds its owner and forwards to Owner::call<M>.
template <auto M, class Owner>
struct bound_fn {
  Owner* owner;
  template <class... A>
  [[nodiscard]] auto operator()(A&&... a) const {
    return owner->template call<M>(std::forward<A>(a)...);
  }
};
// What Owner::operator-> returns: a proxy by value that hands out its own address.
template <class P>
struct arrow {
  P p;
  P* operator->() { return &p; }
};
template <class Api>
inline constexpr bool is_library = [] {
  if constexpr (requires { interface_traits<Api>::library; }) return interface_traits<Api>::library;
  else return false;
}();
}  // namespace detail

// The grant label of a host service function ("host_api::log"), for Policy::Builder::grant.
template <auto M>
std::string service() {
  using Api = typename detail::member_fn<decltype(M)>::api;
  constexpr std::size_t i = detail::index_of_fn<Api, M>();
  static_assert(i < std::tuple_size_v<detail::fns_tuple<Api>>, "ward: this function is not declared in its WARD_INTERFACE");
  return std::get<i>(interface_traits<Api>::fns).name;
}

}  // namespace ward

// ---- the declaration macro -------------------------------------------------------------------
#define WARD_DETAIL_PARENS ()
#define WARD_DETAIL_EXPAND(...) WARD_DETAIL_EXPAND3(WARD_DETAIL_EXPAND3(WARD_DETAIL_EXPAND3(WARD_DETAIL_EXPAND3(__VA_ARGS__))))
#define WARD_DETAIL_EXPAND3(...) WARD_DETAIL_EXPAND2(WARD_DETAIL_EXPAND2(WARD_DETAIL_EXPAND2(WARD_DETAIL_EXPAND2(__VA_ARGS__))))
#define WARD_DETAIL_EXPAND2(...) WARD_DETAIL_EXPAND1(WARD_DETAIL_EXPAND1(WARD_DETAIL_EXPAND1(WARD_DETAIL_EXPAND1(__VA_ARGS__))))
#define WARD_DETAIL_EXPAND1(...) __VA_ARGS__
#define WARD_DETAIL_FOR_EACH(m, a, ...) __VA_OPT__(WARD_DETAIL_EXPAND(WARD_DETAIL_FOR_EACH_I(m, a, __VA_ARGS__)))
#define WARD_DETAIL_FOR_EACH_I(m, a, e, ...) m(a, e) __VA_OPT__(, WARD_DETAIL_FOR_EACH_AGAIN WARD_DETAIL_PARENS(m, a, __VA_ARGS__))
#define WARD_DETAIL_FOR_EACH_AGAIN() WARD_DETAIL_FOR_EACH_I
#define WARD_DETAIL_UNPAREN(...) __VA_ARGS__
#define WARD_DETAIL_FN(Api, entry) WARD_DETAIL_FN_I(Api, WARD_DETAIL_UNPAREN entry)
#define WARD_DETAIL_FN_I(Api, ...) WARD_DETAIL_FN_II(Api, __VA_ARGS__)
#define WARD_DETAIL_FN_II(Api, name, ...) ::ward::detail::Fn<&Api::name __VA_OPT__(, ) __VA_ARGS__> { #Api "::" #name }

// Each entry also becomes a member of the call proxy, so `inst->name(args...)` reads like the
// direct call (proxy.h).
#define WARD_INTERFACE(Api, ...) WARD_DETAIL_INTERFACE(Api, false, __VA_ARGS__)

// A library of free functions (no entry symbol, no table in the library): each entry names a
// function the library exports, declared in the library's own header, which must be included
// first. The function types come from that header (decltype), so a declaration cannot drift
// from it; the child binds each one with dlsym. Annotations are those of WARD_INTERFACE.
//
//   #include <zstd.h>
//   WARD_LIBRARY(zstd_lib,
//       (ZSTD_compressBound),
//       (ZSTD_compress, ward::out(0, 1), ward::in(2, 3)));
//   auto z = ward::Instance<zstd_lib>::open("libzstd.so.1", policy);
//   auto n = (*z)->ZSTD_compress(dst, sizeof dst, src, len, 3);
//
// It defines `struct zstd_lib` (one function-pointer member per entry, named as the function),
// so it goes at global scope.
#define WARD_LIBRARY(Api, ...)                                                               \
  struct Api {                                                                               \
    WARD_DETAIL_FOR_EACH_NOSEP(WARD_DETAIL_MEMBER, Api, __VA_ARGS__)                         \
  };                                                                                         \
  WARD_DETAIL_INTERFACE(Api, true, __VA_ARGS__)

#define WARD_DETAIL_FOR_EACH_NOSEP(m, a, ...) __VA_OPT__(WARD_DETAIL_EXPAND(WARD_DETAIL_FOR_EACH_NOSEP_I(m, a, __VA_ARGS__)))
#define WARD_DETAIL_FOR_EACH_NOSEP_I(m, a, e, ...) m(a, e) __VA_OPT__(WARD_DETAIL_FOR_EACH_NOSEP_AGAIN WARD_DETAIL_PARENS(m, a, __VA_ARGS__))
#define WARD_DETAIL_FOR_EACH_NOSEP_AGAIN() WARD_DETAIL_FOR_EACH_NOSEP_I
#define WARD_DETAIL_NAME(entry) WARD_DETAIL_NAME_I(WARD_DETAIL_UNPAREN entry)
#define WARD_DETAIL_NAME_I(...) WARD_DETAIL_NAME_II(__VA_ARGS__, )
#define WARD_DETAIL_NAME_II(name, ...) name
#define WARD_DETAIL_MEMBER(Api, entry) decltype(&::WARD_DETAIL_NAME(entry)) WARD_DETAIL_NAME(entry);
#define WARD_DETAIL_PROXY_MEMBER(Api, entry) ::ward::detail::bound_fn<&Api::WARD_DETAIL_NAME(entry), Owner> WARD_DETAIL_NAME(entry);
#define WARD_DETAIL_PROXY_INIT(Api, entry) WARD_DETAIL_NAME(entry){o}

#define WARD_DETAIL_INTERFACE(Api, is_library, ...)                                            \
  template <>                                                                                  \
  struct ward::interface_traits<Api> {                                                         \
    static constexpr std::string_view name = #Api;                                             \
    static constexpr bool library = is_library;                                                \
    static constexpr auto fns = std::make_tuple(WARD_DETAIL_FOR_EACH(WARD_DETAIL_FN, Api, __VA_ARGS__)); \
    static_assert([]<std::size_t... I>(std::index_sequence<I...>) {                            \
      return (std::tuple_element_t<I, std::remove_cvref_t<decltype(fns)>>::checked && ...);    \
    }(std::make_index_sequence<std::tuple_size_v<std::remove_cvref_t<decltype(fns)>>>{}));      \
  };                                                                                           \
  template <class Owner>                                                                       \
  struct ward::proxy<Api, Owner> {                                                             \
    explicit proxy(Owner* o) : WARD_DETAIL_FOR_EACH(WARD_DETAIL_PROXY_INIT, Api, __VA_ARGS__) {} \
    WARD_DETAIL_FOR_EACH_NOSEP(WARD_DETAIL_PROXY_MEMBER, Api, __VA_ARGS__)                     \
  }
