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
//   ward::cstring(i)                       const char *, NUL-terminated, copied in
//   ward::services(i)                      pointer to a host service table (its own
//                                          WARD_INTERFACE); the extension receives stubs that
//                                          cross back into the host
//   ward::nullable(i)                      the pointer may be null (otherwise null is an error)
//   ward::handle<T>(i, rights)             a 64-bit handle to a host object of type T
//                                          (handle_table.h), checked at every crossing
// and the function as a whole:
//   ward::returns_string                   the const char * result is a string (copied out)
//   ward::returns_handle<T>(rights)        the 64-bit result is a handle, checked likewise
//   ward::ext_handle(i), ward::returns_ext_handle   a 64-bit value the extension issued; a
//                                          Supervisor keeps it valid across restarts
//   ward::returns_deep                     [deep] the const T * result points to a WARD_STRUCT
//                                          descriptor: deep-copied to a ward::Deep<T> (deep.h);
//                                          an out(i) T * of such a T is deep-copied back likewise
//   ward::self(i)                          [deep] in a descriptor's own WARD_INTERFACE: parameter
//                                          i is the descriptor it is called through (object.h)
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
#include "ward/iface/values.h"
#include "ward/core/schema.h"
#include "ward/core/handle_table.h"

namespace ward {

struct Ann {
  enum class K : std::uint8_t {
    in, out, inout, cstring, services, nullable, handle, ext_handle,                    // per parameter
    idempotent, replay, replay_latest, returns_string, returns_handle, returns_ext_handle,  // per function
    // [deep] descriptors (iface/deep.h, object.h): self per parameter; returns_deep per function
    self, returns_deep,
  };
  K k;
  std::uint8_t index = 0xff;
  std::uint8_t count = 0xff;
  HandleType type = nullptr;  // handles: ward::handle_type<T>()
  std::uint32_t rights = 0;  // handles: rights the handle must carry
  constexpr bool per_function() const {
    return k == K::idempotent || k == K::replay || k == K::replay_latest || k == K::returns_string ||
           k == K::returns_handle || k == K::returns_ext_handle || k == K::returns_deep;
  }
};

constexpr Ann in(std::uint8_t i) { return {Ann::K::in, i, 0xff}; }
constexpr Ann in(std::uint8_t i, std::uint8_t count) { return {Ann::K::in, i, count}; }
constexpr Ann out(std::uint8_t i) { return {Ann::K::out, i, 0xff}; }
constexpr Ann out(std::uint8_t i, std::uint8_t count) { return {Ann::K::out, i, count}; }
constexpr Ann inout(std::uint8_t i) { return {Ann::K::inout, i, 0xff}; }
constexpr Ann inout(std::uint8_t i, std::uint8_t count) { return {Ann::K::inout, i, count}; }
constexpr Ann cstring(std::uint8_t i) { return {Ann::K::cstring, i, 0xff}; }
constexpr Ann services(std::uint8_t i) { return {Ann::K::services, i, 0xff}; }
constexpr Ann nullable(std::uint8_t i) { return {Ann::K::nullable, i, 0xff}; }
// Parameter i is a handle (a 64-bit integer) to a host object of type T granted to this domain,
// which must carry `required` rights. Checked at every crossing: bad handle, wrong type,
// missing right, in that order.
template <class T>
constexpr Ann handle(std::uint8_t i, Rights required = 0) {
  return {Ann::K::handle, i, 0xff, handle_type<T>(), required};
}
// The function returns a handle of type T: checked like a handle parameter when the extension
// returns it.
template <class T>
constexpr Ann returns_handle(Rights required = 0) {
  return {Ann::K::returns_handle, 0xff, 0xff, handle_type<T>(), required};
}
// Parameter i / the result is a handle the *extension* issued (a session id, a table id): under a
// Supervisor the host sees stable values that keep working across restarts (see supervisor.h).
constexpr Ann ext_handle(std::uint8_t i) { return {Ann::K::ext_handle, i, 0xff, 0, 0}; }
inline constexpr Ann returns_ext_handle{Ann::K::returns_ext_handle};
inline constexpr Ann idempotent{Ann::K::idempotent};
// State-setting: after a restart the supervisor replays every such call, in order, with its
// original arguments. replay_latest keeps only the most recent call of the function.
inline constexpr Ann replay_after_restart{Ann::K::replay};
inline constexpr Ann replay_latest{Ann::K::replay_latest};
inline constexpr Ann returns_string{Ann::K::returns_string};
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
  Ann ann{Ann::K::nullable};
  bool nullable = false;
};

template <std::size_t N>
consteval ParamAnn ann_for(const std::array<Ann, N>& anns, std::size_t i) {
  ParamAnn p;
  for (const Ann& a : anns) {
    if (a.index != i) continue;
    if (a.k == Ann::K::nullable) {
      p.nullable = true;
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

// Declared below; the table id of service type S within interface Api.
template <class Api, class S>
consteval std::uint32_t service_id();

// ---- compile-time checks, one per parameter so the error names the function and the index ----
template <class F, std::size_t I>
struct CheckParam {
  using P = std::tuple_element_t<I, typename F::args>;
  static constexpr ParamAnn pa = ann_for(F::anns, I);
  static constexpr bool is_ptr = std::is_pointer_v<P>;
  static_assert(pa.count <= 1, "ward: a parameter has more than one direction/kind annotation");
  static_assert(!is_ptr || (pa.count == 1 && pa.ann.k != Ann::K::handle && pa.ann.k != Ann::K::ext_handle),
                "ward: a pointer parameter needs a declared direction and size: annotate it with ward::in/out/inout(index), "
                "ward::in/out/inout(index, count_index), ward::cstring(index) or ward::services(index)");
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
    if constexpr (!is_ptr) {
      return true;
    } else {
      using E = pointee_t<P>;
      if (pa.ann.k == Ann::K::cstring) return std::is_same_v<E, char>;
      if (pa.ann.k == Ann::K::services) return std::is_class_v<E>;
      if (pa.ann.k == Ann::K::self) return true;
      return !std::is_pointer_v<E> && (std::is_void_v<E> || std::is_trivially_copyable_v<E>);
    }
  }();
  static_assert(ok_kind,
                "ward: annotation does not fit the pointer type (cstring needs const char *, services a struct, buffers a "
                "trivially copyable element type; pointers to pointers are not supported)");
  static constexpr bool ok_const = [] {
    if constexpr (!is_ptr) {
      return true;
    } else {
      return !(pa.ann.k == Ann::K::out || pa.ann.k == Ann::K::inout) || !std::is_const_v<std::remove_pointer_t<P>>;
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
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::services) return true;  // functions, not data
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::self) return true;      // never read by the host
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
      return !std::is_void_v<pointee_t<P>> || pa.ann.count != 0xff || pa.ann.k == Ann::K::services ||
             pa.ann.k == Ann::K::cstring || pa.ann.k == Ann::K::self;
    }
  }();
  static_assert(ok_void, "ward: a void pointer needs a byte count: ward::in/out/inout(index, count_index)");
  static constexpr bool ok_count = [] {
    if constexpr (!is_ptr) {
      return true;
    } else {
      if (pa.ann.count == 0xff) return true;
      if (pa.ann.count >= F::arity || pa.ann.count == I) return false;
      return []<std::size_t... J>(std::index_sequence<J...>, std::size_t c) {
        return ((J == c && std::is_integral_v<std::tuple_element_t<J, typename F::args>> &&
                 !std::is_same_v<std::tuple_element_t<J, typename F::args>, bool>) ||
                ...);
      }(std::make_index_sequence<F::arity>{}, pa.ann.count);
    }
  }();
  static_assert(ok_count, "ward: the count index of a buffer annotation must name another parameter of integer type");
  static constexpr bool value = true;
};

template <class F>
struct CheckRet {
  using R = typename F::ret;
  static constexpr bool str = has_flag(F::anns, Ann::K::returns_string);
  static constexpr bool deep = has_flag(F::anns, Ann::K::returns_deep);
  static_assert(!std::is_pointer_v<R> || (str && std::is_same_v<R, const char*>) || deep,
                "ward: a function returning a pointer is only supported for strings: declare it const char * and add "
                "ward::returns_string");
  static_assert(!str || std::is_pointer_v<R>, "ward: ward::returns_string on a function that does not return a pointer");
  static_assert(!deep || (std::is_pointer_v<R> && described<pointee_t<R>>),
                "ward: ward::returns_deep needs a result that points to a WARD_STRUCT type (declare the struct with "
                "WARD_STRUCT first)");
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
  template <std::size_t I>
  static constexpr bool is_ext_handle = [] {
    for (const Ann& a : anns)
      if (a.k == Ann::K::ext_handle && a.index == I) return true;
    return false;
  }();
  static constexpr Ann returned_handle = [] {
    for (const Ann& a : anns)
      if (a.k == Ann::K::returns_handle) return a;
    return Ann{Ann::K::nullable};
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
  using next = std::conditional_t<svc, push_unique<L, pointee_t<P>>, std::type_identity<L>>::type;
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
