// Sizes of buffer parameters, wherever C puts them. A ward::Size says how many elements a
// pointer parameter points to; it is the count of ward::in/out/inout(i, count):
//   ward::arg(j)                 the value of integer parameter j (what in(i, j) means)
//   ward::deref(j)               *param_j: parameter j points to one integer, annotated
//                                ward::in(j) or ward::inout(j) (`size_t *len`: capacity in)
//   ward::elems(64)              a constant
//   ward::field<&S::len>(j)      member `len` of the struct parameter j points to (or of a
//                                by-value struct parameter j)
//   ward::arg(1) * ward::arg(2) * 4   a product of up to kMaxFactors of the above, times constants
// and, for out and inout data, how many elements hold data after the call (Ann::filled):
//   .filled(ward::deref(j))      *param_j after the call (parameter j out or inout); more than
//                                the capacity is bad_data: the call fails, nothing is copied back
//   .filled(ward::result)        the (integer) result counts the elements produced; a negative
//                                value or one above the capacity is the library's error code: no
//                                out data is copied back, the result is still returned
// Only the filled part is copied into the host's buffer; the rest keeps what the host had, as
// with a direct call.
//
// A Size is a structural literal type: it lives inside ward::Ann, a template argument, and is
// built and checked at compile time (interface.h checks each factor against the parameter it
// names). Evaluation reads the host's own arguments (trusted): a negative count, a null pointer
// to a count, or a product that overflows 64 bits fails the call with misuse. Host services
// (calls from the extension) take only ward::arg, constants and their product, and no .filled:
// the child computes those sizes itself.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ward/iface/detail/reflect.h"

namespace ward {

namespace detail {
// A struct's identity inside a Size (the struct a ward::field member belongs to).
struct SizeTypeTag {};
template <class T>
inline constexpr SizeTypeTag size_type_tag{};
template <class T>
consteval const SizeTypeTag* size_type_of() {
  return &size_type_tag<std::remove_cv_t<T>>;
}

// Called only when a size expression is wrong: a call to a function that is not constexpr ends
// compilation, and the compiler names the function.
void ward_size_has_more_than_4_variable_factors();
void ward_size_constant_overflows_64_bits();
void ward_size_constant_is_negative();
}  // namespace detail

struct Size {
  enum class From : std::uint8_t { arg, deref, field, result };
  // One variable factor: the parameter it reads and how.
  struct Factor {
    From from = From::arg;
    std::uint8_t index = 0xff;  // arg, deref, field: the parameter
    std::uint8_t width = 0;     // field: bytes of the member
    bool is_signed = false;     // field: the member's signedness
    std::uint32_t offset = 0;   // field: byte offset of the member in its struct
    const detail::SizeTypeTag* of = nullptr;  // field: the struct
  };
  static constexpr std::size_t kMaxFactors = 4;
  Factor factors[kMaxFactors]{};
  std::uint8_t n = 0;           // factors in use
  std::uint64_t constant = 1;   // times every constant factor
  bool given = false;           // false: none declared (a pointer to one element; no filled count)

  constexpr bool has(From f) const {
    for (std::uint8_t k = 0; k < n; ++k)
      if (factors[k].from == f) return true;
    return false;
  }
  // What the child can compute itself (upcalls): a constant times at most one parameter.
  constexpr bool child_computable() const {
    return n == 0 || (n == 1 && factors[0].from == From::arg);
  }
};

namespace detail {
constexpr Size factor_size(Size::Factor f) {
  Size s;
  s.factors[0] = f;
  s.n = 1;
  s.given = true;
  return s;
}
}  // namespace detail

// The value of integer parameter j.
constexpr Size arg(std::uint8_t j) { return detail::factor_size({.from = Size::From::arg, .index = j}); }
// The integer parameter j points to (read before the call: the capacity).
constexpr Size deref(std::uint8_t j) { return detail::factor_size({.from = Size::From::deref, .index = j}); }
// A constant element count.
template <std::integral T>
constexpr Size elems(T count) {
  if (count < 0) detail::ward_size_constant_is_negative();
  Size s;
  s.constant = static_cast<std::uint64_t>(count);
  s.given = true;
  return s;
}
// The return value, in .filled(ward::result) only.
inline constexpr Size result = detail::factor_size({.from = Size::From::result});

constexpr Size operator*(Size a, Size b) {
  if (a.n + b.n > Size::kMaxFactors) detail::ward_size_has_more_than_4_variable_factors();
  for (std::uint8_t k = 0; k < b.n && a.n < Size::kMaxFactors; ++k) a.factors[a.n++] = b.factors[k];
  if (__builtin_mul_overflow(a.constant, b.constant, &a.constant)) detail::ward_size_constant_overflows_64_bits();
  a.given = a.given || b.given;
  return a;
}
template <std::integral T>
constexpr Size operator*(Size a, T k) {
  return a * elems(k);
}
template <std::integral T>
constexpr Size operator*(T k, Size a) {
  return elems(k) * a;
}

namespace detail {

template <class M>
struct member_of;
template <class S, class T>
struct member_of<T S::*> {
  using owner = S;
  using type = T;
};

// Offsets of a plain C struct's direct fields, from their types and C's layout rules; `ok` is
// false when they do not add up to the struct's real size and alignment (a packed struct).
template <class S>
struct FieldOffsets {
  std::size_t at[kMaxFields]{};
  bool ok = false;
};
template <class S, class... T>
consteval FieldOffsets<S> field_offsets(types<T...>) {
  FieldOffsets<S> r;
  std::size_t off = 0, i = 0, align = 1;
  ((off = (off + alignof(T) - 1) / alignof(T) * alignof(T), r.at[i++] = off, off += sizeof(T),
    align = alignof(T) > align ? alignof(T) : align),
   ...);
  off = (off + align - 1) / align * align;
  r.ok = off == sizeof(S) && align == alignof(S);
  return r;
}

// Which direct field of S the member pointer M names: the one whose address in a constant S is
// the member's.
template <auto M>
consteval std::size_t field_index() {
  using S = typename member_of<decltype(M)>::owner;
  S obj{};
  const void* want = &(obj.*M);
  std::size_t k = 0, found = kMaxFields;
  visit_fields(obj, [&](auto&... f) { ((found = static_cast<const void*>(&f) == want ? k : found, ++k), ...); });
  return found;
}

}  // namespace detail

// Member M (an integer) of the struct parameter j points to, or of by-value struct parameter j.
// Its offset and width are computed here, at compile time, from the struct's field types.
template <auto M>
consteval Size field(std::uint8_t j) {
  static_assert(std::is_member_object_pointer_v<decltype(M)>, "ward::field<&S::member>: M must name a data member");
  using S = typename detail::member_of<decltype(M)>::owner;
  using T = typename detail::member_of<decltype(M)>::type;
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>,
                "ward::field<&S::member>: the member must be an integer (it counts elements)");
  static_assert(detail::reflectable<S>,
                "ward::field<&S::member>: S must be a plain C struct (an aggregate of at most 24 fields, no base classes)");
  constexpr auto offsets = detail::field_offsets<S>(detail::field_types<S>{});
  static_assert(offsets.ok, "ward::field<&S::member>: cannot compute S's layout from its fields (a packed struct?)");
  constexpr std::size_t k = detail::field_index<M>();
  static_assert(k < detail::kMaxFields, "ward::field<&S::member>: the member is not a direct field of S");
  return detail::factor_size({.from = Size::From::field,
                              .index = j,
                              .width = sizeof(T),
                              .is_signed = std::is_signed_v<T>,
                              .offset = static_cast<std::uint32_t>(offsets.at[k]),
                              .of = detail::size_type_of<S>()});
}

namespace detail {

// Element count named by an integer; negative counts are an error.
template <class T>
bool count_of(const T& v, std::uint64_t& out) {
  if constexpr (std::is_signed_v<T>) {
    if (v < 0) return false;
  }
  out = static_cast<std::uint64_t>(v);
  return true;
}

// An integer of `width` bytes at p (any alignment); false if it is negative.
inline bool read_count(const void* p, std::size_t width, bool is_signed, std::uint64_t& out) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, p, width);  // little endian: the low bytes
  const std::uint64_t sign = std::uint64_t{1} << (width * 8 - 1);
  if (is_signed && (bits & sign)) return false;
  out = bits;
  return true;
}

enum class SizeError : std::uint8_t { none, negative, overflow, null };

constexpr std::string_view size_error_text(SizeError e) {
  switch (e) {
    case SizeError::none: return "";
    case SizeError::negative: return "negative element count";
    case SizeError::overflow: return "element count overflows";
    case SizeError::null: return "null pointer to its size (ward::deref / ward::field)";
  }
  return "";
}

// n *= the factor's value, read from `values` (the C arguments, or the host's copies of them).
template <Size::Factor Fa, class Values>
SizeError multiply(const Values& values, std::uint64_t& n) {
  std::uint64_t v = 0;
  const auto& p = std::get<Fa.index>(values);
  if constexpr (Fa.from == Size::From::arg) {
    if (!count_of(p, v)) return SizeError::negative;
  } else if constexpr (Fa.from == Size::From::deref) {
    if (!p) return SizeError::null;
    if (!count_of(*p, v)) return SizeError::negative;
  } else if constexpr (Fa.from == Size::From::field) {
    const void* base;
    if constexpr (std::is_pointer_v<std::remove_cvref_t<decltype(p)>>) {
      if (!p) return SizeError::null;
      base = p;
    } else {
      base = &p;
    }
    if (!read_count(static_cast<const unsigned char*>(base) + Fa.offset, Fa.width, Fa.is_signed, v))
      return SizeError::negative;
  } else {
    static_assert(Fa.from != Size::From::result, "ward: ward::result is only for .filled(ward::result)");
  }
  return __builtin_mul_overflow(n, v, &n) ? SizeError::overflow : SizeError::none;
}

// The element count S names (1 when none is declared).
template <Size S, class Values>
SizeError evaluate(const Values& values, std::uint64_t& n) {
  n = S.constant;
  SizeError e = SizeError::none;
  [&]<std::size_t... K>(std::index_sequence<K...>) {
    ((e = e == SizeError::none ? multiply<S.factors[K]>(values, n) : e), ...);
  }(std::make_index_sequence<S.n>{});
  return e;
}

}  // namespace detail
}  // namespace ward
