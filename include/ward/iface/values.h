// Values with invalid bit patterns, checked where extension data becomes a host object.
//
// Most bytes make a valid object of any type: every bit pattern is some int, some double, some
// pointer (meaningless in the host, but loading it is defined). Two kinds of type are different:
//  - bool: only the bytes 0 and 1 are values. Loading a bool whose byte is 2 is undefined
//    behaviour; compilers assume it never happens (`names[v.ok]` with a two-element array reads
//    past it when ok's byte is 2).
//  - enums: an enum declared without a fixed underlying type (every enum in a C header, seen from
//    C++) only has the values of its enumerators' bit range; anything else is undefined again.
//    An enum with a fixed underlying type (`enum class E`, `enum E : int`) has every value of
//    that type, but the host usually only expects its enumerators.
// What ward does, on every path by which extension data becomes a host object (a result, out
// and inout buffers, and every argument of a host service: scalars, records, buffers, and any
// bool or enum nested in them, in sub-records or arrays):
//  - a bool is normalised: a non-zero byte is true, exactly as a C conversion to bool would
//    make it. Never an error: C code that writes a bool through a wider type is merely sloppy.
//  - an enum for which the host declared a range (ward::enum_range<E>, below) is checked
//    against it; a value outside it is refused (see the callers for the error: bad_data for a
//    result or out data, the call then changing no host object; a violation ending the domain
//    for a host service's argument, which never reaches the service).
//  - an enum with a fixed underlying type and no declared range passes unchanged: every value is
//    a valid object, and the host treats it like any other Tainted integer.
//  - an enum without a fixed underlying type and no declared range does not compile: ward
//    cannot see its enumerators, so it cannot tell the valid values from the undefined ones.
//    Declare its range (the C header's first and last enumerator, usually).
//  - a type ward cannot look into (a union, a class with constructors or base classes, a struct
//    with more than kMaxFields fields, or one with bit-fields or packing whose fields include a
//    bool or an enum) does not compile unless the host declares, with
//    ward::all_bit_patterns_valid<T>, that every byte pattern is a valid T (a union of integers).
// The check runs on the host's private copy, never on the arena, which the extension can change
// while it is read.
#pragma once

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

#include "ward/iface/detail/reflect.h"

namespace ward {

// The values an enum E may take when it comes from an extension, both ends inclusive:
//   template <> struct ward::enum_range<color> { static constexpr color min = RED, max = BLUE; };
// Declare it at global scope, before the WARD_INTERFACE that uses E. Values between min and max
// that are not enumerators pass (a sparse enum's host code must still handle them).
template <class E>
struct enum_range;

// Declared true by the host for a type every byte pattern of which is a valid object, so that
// ward need not (or cannot) look inside it:
//   template <> inline constexpr bool ward::all_bit_patterns_valid<raw_union> = true;
// A promise about the type, not a check: declaring it for a type holding a bool or an enum lets
// invalid objects into the host again.
template <class T>
inline constexpr bool all_bit_patterns_valid = false;

namespace detail {

template <class E>
concept has_enum_range = requires {
  { enum_range<E>::min } -> std::convertible_to<E>;
  { enum_range<E>::max } -> std::convertible_to<E>;
};

// An enum with a fixed underlying type can be list-initialised from an integer; one without
// cannot (its valid values are not all of the underlying type's).
template <class E>
concept fixed_enum = std::is_enum_v<E> && requires { E{std::underlying_type_t<E>{}}; };

// What a value of type T from an extension needs.
struct ValueRules {
  bool normalise = false;      // holds a bool (or an enum whose underlying type is bool)
  bool reject = false;         // holds an enum with a declared range
  bool unranged_enum = false;  // holds an enum without a fixed type or declared range: refused
  bool opaque = false;         // holds something ward cannot look into (see the file comment)
  constexpr ValueRules operator|(ValueRules o) const {
    return {normalise || o.normalise, reject || o.reject, unranged_enum || o.unranged_enum, opaque || o.opaque};
  }
  constexpr bool compiles() const { return !unranged_enum && !opaque; }
  constexpr bool checks() const { return normalise || reject; }
};

template <class T>
consteval ValueRules value_rules();

template <class... F>
consteval ValueRules fields_rules(types<F...>) {
  return (ValueRules{} | ... | value_rules<std::remove_cv_t<F>>());
}

// Whether the fields can be bound to references (no bit-fields, no packing): the size and
// alignment the field types imply are the struct's own.
template <class... F>
consteval bool natural_layout(std::size_t size, std::size_t align, types<F...>) {
  std::size_t offset = 0, max_align = 1;
  ((offset = (offset + alignof(F) - 1) / alignof(F) * alignof(F) + sizeof(F),
    max_align = alignof(F) > max_align ? alignof(F) : max_align),
   ...);
  offset = (offset + max_align - 1) / max_align * max_align;
  return offset == size && max_align == align;
}

template <class T>
consteval ValueRules value_rules() {
  if constexpr (all_bit_patterns_valid<T>) {
    return {};
  } else if constexpr (std::is_same_v<T, bool>) {
    return {.normalise = true};
  } else if constexpr (std::is_enum_v<T>) {
    if constexpr (has_enum_range<T>) return {.reject = true};
    else if constexpr (!fixed_enum<T>) return {.unranged_enum = true};
    else return {.normalise = std::is_same_v<std::underlying_type_t<T>, bool>};
  } else if constexpr (std::is_scalar_v<T>) {
    return {};  // integers, floating point, pointers: every bit pattern is a value
  } else if constexpr (std::is_array_v<T>) {
    return value_rules<std::remove_cv_t<std::remove_all_extents_t<T>>>();
  } else if constexpr (reflectable<T>) {
    constexpr ValueRules r = fields_rules(field_types<T>{});
    if constexpr (r.checks() && !natural_layout(sizeof(T), alignof(T), field_types<T>{})) return r | ValueRules{.opaque = true};
    else return r;
  } else {
    return {.opaque = true};
  }
}

// Does a T from an extension need looking at (a bool or a ranged enum somewhere inside)?
template <class T>
inline constexpr bool needs_check = value_rules<std::remove_cv_t<T>>().checks();
// May a T from an extension be refused (a ranged enum somewhere inside)?
template <class T>
inline constexpr bool may_refuse = value_rules<std::remove_cv_t<T>>().reject;
// Does ward know how to check a T (see the file comment for what does not compile)?
template <class T>
inline constexpr bool checkable = value_rules<std::remove_cv_t<T>>().compiles();

// Makes `obj`, the host's copy of a T an extension produced, a valid T: every bool in it becomes
// 0 or 1; every enum with a declared range is checked. Returns false if one is out of range (obj
// is then partly normalised: the caller throws it away). Works on bytes, never loading a bool or
// an enum that may be invalid.
template <class T>
[[nodiscard]] bool sanitize(T& obj) noexcept {
  using U = std::remove_cv_t<T>;
  static_assert(checkable<U>,
                "ward: cannot check this type for invalid values (an enum without a fixed underlying type needs "
                "ward::enum_range<E>; a union, class with constructors, or struct with bit-fields or packing around a "
                "bool or enum needs ward::all_bit_patterns_valid<T>)");
  void* const bytes = const_cast<void*>(static_cast<const volatile void*>(&obj));
  if constexpr (!needs_check<U>) {
    return true;
  } else if constexpr (std::is_same_v<U, bool> || (std::is_enum_v<U> && !has_enum_range<U>)) {
    unsigned char b;  // a bool (or an enum over bool): any non-zero byte is true
    std::memcpy(&b, bytes, 1);
    b = b != 0;
    std::memcpy(bytes, &b, 1);
    return true;
  } else if constexpr (std::is_enum_v<U>) {
    constexpr bool over_bool = std::is_same_v<std::underlying_type_t<U>, bool>;
    using I = std::conditional_t<over_bool, unsigned char, std::underlying_type_t<U>>;
    constexpr I lo = static_cast<I>(enum_range<U>::min), hi = static_cast<I>(enum_range<U>::max);
    static_assert(lo <= hi, "ward: enum_range<E>::min is above max");
    I v;
    std::memcpy(&v, bytes, sizeof v);
    if constexpr (over_bool) {
      v = v != 0;
      std::memcpy(bytes, &v, 1);
    }
    return v >= lo && v <= hi;
  } else if constexpr (std::is_array_v<U>) {
    for (auto& e : obj)
      if (!sanitize(e)) return false;
    return true;
  } else {
    return visit_fields(obj, [](auto&... f) { return (sanitize(f) && ...); });
  }
}

// sanitize() over `count` consecutive Ts.
template <class T>
[[nodiscard]] bool sanitize_all(T* objs, std::size_t count) noexcept {
  if constexpr (needs_check<T>) {
    for (std::size_t i = 0; i < count; ++i)
      if (!sanitize(objs[i])) return false;
  }
  return true;
}

}  // namespace detail
}  // namespace ward
