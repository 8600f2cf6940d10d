// Just enough aggregate reflection for the C structs that cross a domain:
//  - the field types of a struct passed by value, so the child can describe it to libffi (on
//    x86-64 a {double, double} travels in two SSE registers, a {int, int} in one general
//    register: interface.h);
//  - the fields of any struct the extension fills, so that values with invalid bit patterns
//    (bools, enums) can be found and checked in the host's copy (values.h).
// Fields are counted by how many initialisers the aggregate accepts, each in its own braces so
// that no brace elision happens (an array or a nested struct is one field, not one per element),
// and named with a structured binding. Reflectable: aggregates without base classes with 1 to
// kMaxFields direct fields. Anything else (a union, a class with constructors, more fields) is
// not; each caller decides what that means for it.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

namespace ward::detail {

inline constexpr std::size_t kMaxFields = 24;

template <class... T>
struct types {
  static constexpr std::size_t size = sizeof...(T);
};

struct any_field {
  template <class T>
  constexpr operator T() const noexcept;  // never defined: unevaluated use only
};

template <class T, std::size_t N>
concept aggregate_with = []<std::size_t... I>(std::index_sequence<I...>) {
  return requires { T{{(static_cast<void>(I), any_field{})}...}; };
}(std::make_index_sequence<N>{});

// Direct fields of an aggregate (kMaxFields + 1 when it has more than kMaxFields).
template <class T, std::size_t N = 0>
consteval std::size_t field_count() {
  if constexpr (N > kMaxFields) return N;
  else if constexpr (aggregate_with<T, N + 1>) return field_count<T, N + 1>();
  else return N;
}

template <class T>
inline constexpr bool reflectable = std::is_class_v<T> && !std::is_union_v<T> && std::is_aggregate_v<T> &&
                                    field_count<T>() >= 1 && field_count<T>() <= kMaxFields;

// The structured bindings of up to kMaxFields fields: a, b, c, ... and their declared types.
#define WARD_DETAIL_NAMES_1 a
#define WARD_DETAIL_NAMES_2 WARD_DETAIL_NAMES_1, b
#define WARD_DETAIL_NAMES_3 WARD_DETAIL_NAMES_2, c
#define WARD_DETAIL_NAMES_4 WARD_DETAIL_NAMES_3, d
#define WARD_DETAIL_NAMES_5 WARD_DETAIL_NAMES_4, e
#define WARD_DETAIL_NAMES_6 WARD_DETAIL_NAMES_5, f
#define WARD_DETAIL_NAMES_7 WARD_DETAIL_NAMES_6, g
#define WARD_DETAIL_NAMES_8 WARD_DETAIL_NAMES_7, h
#define WARD_DETAIL_NAMES_9 WARD_DETAIL_NAMES_8, i
#define WARD_DETAIL_NAMES_10 WARD_DETAIL_NAMES_9, j
#define WARD_DETAIL_NAMES_11 WARD_DETAIL_NAMES_10, k
#define WARD_DETAIL_NAMES_12 WARD_DETAIL_NAMES_11, l
#define WARD_DETAIL_NAMES_13 WARD_DETAIL_NAMES_12, m
#define WARD_DETAIL_NAMES_14 WARD_DETAIL_NAMES_13, n
#define WARD_DETAIL_NAMES_15 WARD_DETAIL_NAMES_14, o
#define WARD_DETAIL_NAMES_16 WARD_DETAIL_NAMES_15, p
#define WARD_DETAIL_NAMES_17 WARD_DETAIL_NAMES_16, q
#define WARD_DETAIL_NAMES_18 WARD_DETAIL_NAMES_17, r
#define WARD_DETAIL_NAMES_19 WARD_DETAIL_NAMES_18, s
#define WARD_DETAIL_NAMES_20 WARD_DETAIL_NAMES_19, t
#define WARD_DETAIL_NAMES_21 WARD_DETAIL_NAMES_20, u
#define WARD_DETAIL_NAMES_22 WARD_DETAIL_NAMES_21, v
#define WARD_DETAIL_NAMES_23 WARD_DETAIL_NAMES_22, w
#define WARD_DETAIL_NAMES_24 WARD_DETAIL_NAMES_23, x
#define WARD_DETAIL_DECLS_1 decltype(a)
#define WARD_DETAIL_DECLS_2 WARD_DETAIL_DECLS_1, decltype(b)
#define WARD_DETAIL_DECLS_3 WARD_DETAIL_DECLS_2, decltype(c)
#define WARD_DETAIL_DECLS_4 WARD_DETAIL_DECLS_3, decltype(d)
#define WARD_DETAIL_DECLS_5 WARD_DETAIL_DECLS_4, decltype(e)
#define WARD_DETAIL_DECLS_6 WARD_DETAIL_DECLS_5, decltype(f)
#define WARD_DETAIL_DECLS_7 WARD_DETAIL_DECLS_6, decltype(g)
#define WARD_DETAIL_DECLS_8 WARD_DETAIL_DECLS_7, decltype(h)
#define WARD_DETAIL_DECLS_9 WARD_DETAIL_DECLS_8, decltype(i)
#define WARD_DETAIL_DECLS_10 WARD_DETAIL_DECLS_9, decltype(j)
#define WARD_DETAIL_DECLS_11 WARD_DETAIL_DECLS_10, decltype(k)
#define WARD_DETAIL_DECLS_12 WARD_DETAIL_DECLS_11, decltype(l)
#define WARD_DETAIL_DECLS_13 WARD_DETAIL_DECLS_12, decltype(m)
#define WARD_DETAIL_DECLS_14 WARD_DETAIL_DECLS_13, decltype(n)
#define WARD_DETAIL_DECLS_15 WARD_DETAIL_DECLS_14, decltype(o)
#define WARD_DETAIL_DECLS_16 WARD_DETAIL_DECLS_15, decltype(p)
#define WARD_DETAIL_DECLS_17 WARD_DETAIL_DECLS_16, decltype(q)
#define WARD_DETAIL_DECLS_18 WARD_DETAIL_DECLS_17, decltype(r)
#define WARD_DETAIL_DECLS_19 WARD_DETAIL_DECLS_18, decltype(s)
#define WARD_DETAIL_DECLS_20 WARD_DETAIL_DECLS_19, decltype(t)
#define WARD_DETAIL_DECLS_21 WARD_DETAIL_DECLS_20, decltype(u)
#define WARD_DETAIL_DECLS_22 WARD_DETAIL_DECLS_21, decltype(v)
#define WARD_DETAIL_DECLS_23 WARD_DETAIL_DECLS_22, decltype(w)
#define WARD_DETAIL_DECLS_24 WARD_DETAIL_DECLS_23, decltype(x)
#define WARD_DETAIL_CASE(N, BODY)          \
  if constexpr (n == N) {                  \
    auto& [WARD_DETAIL_NAMES_##N] = obj;   \
    return BODY(N);                        \
  } else
#define WARD_DETAIL_ALL_CASES(BODY) \
  WARD_DETAIL_CASE(1, BODY) \
  WARD_DETAIL_CASE(2, BODY) \
  WARD_DETAIL_CASE(3, BODY) \
  WARD_DETAIL_CASE(4, BODY) \
  WARD_DETAIL_CASE(5, BODY) \
  WARD_DETAIL_CASE(6, BODY) \
  WARD_DETAIL_CASE(7, BODY) \
  WARD_DETAIL_CASE(8, BODY) \
  WARD_DETAIL_CASE(9, BODY) \
  WARD_DETAIL_CASE(10, BODY) \
  WARD_DETAIL_CASE(11, BODY) \
  WARD_DETAIL_CASE(12, BODY) \
  WARD_DETAIL_CASE(13, BODY) \
  WARD_DETAIL_CASE(14, BODY) \
  WARD_DETAIL_CASE(15, BODY) \
  WARD_DETAIL_CASE(16, BODY) \
  WARD_DETAIL_CASE(17, BODY) \
  WARD_DETAIL_CASE(18, BODY) \
  WARD_DETAIL_CASE(19, BODY) \
  WARD_DETAIL_CASE(20, BODY) \
  WARD_DETAIL_CASE(21, BODY) \
  WARD_DETAIL_CASE(22, BODY) \
  WARD_DETAIL_CASE(23, BODY) \
  WARD_DETAIL_CASE(24, BODY)
#define WARD_DETAIL_TYPES_OF(N) types<WARD_DETAIL_DECLS_##N>{}
#define WARD_DETAIL_VISIT(N) std::forward<V>(visit)(WARD_DETAIL_NAMES_##N)

// Only for decltype: the declared field types (an array stays an array; a bit-field gives its
// declared type). Takes no reference to a field, so bit-fields and packed structs are fine.
template <class T>
auto field_types_of(T& obj) {
  static_assert(reflectable<T>);
  constexpr std::size_t n = field_count<T>();
  WARD_DETAIL_ALL_CASES(WARD_DETAIL_TYPES_OF) { return types<>{}; }
}
template <class T>
using field_types = decltype(field_types_of(std::declval<T&>()));

// Calls visit(fields...) with every field of `obj` as an lvalue, in declaration order. The
// fields are bound to references: not for structs with bit-fields or packed members.
template <class T, class V>
constexpr decltype(auto) visit_fields(T& obj, V&& visit) {
  static_assert(reflectable<std::remove_cv_t<T>>);
  constexpr std::size_t n = field_count<std::remove_cv_t<T>>();
  WARD_DETAIL_ALL_CASES(WARD_DETAIL_VISIT) { return std::forward<V>(visit)(); }
}

#undef WARD_DETAIL_VISIT
#undef WARD_DETAIL_TYPES_OF
#undef WARD_DETAIL_ALL_CASES
#undef WARD_DETAIL_CASE
#undef WARD_DETAIL_NAMES_1
#undef WARD_DETAIL_DECLS_1
#undef WARD_DETAIL_NAMES_2
#undef WARD_DETAIL_DECLS_2
#undef WARD_DETAIL_NAMES_3
#undef WARD_DETAIL_DECLS_3
#undef WARD_DETAIL_NAMES_4
#undef WARD_DETAIL_DECLS_4
#undef WARD_DETAIL_NAMES_5
#undef WARD_DETAIL_DECLS_5
#undef WARD_DETAIL_NAMES_6
#undef WARD_DETAIL_DECLS_6
#undef WARD_DETAIL_NAMES_7
#undef WARD_DETAIL_DECLS_7
#undef WARD_DETAIL_NAMES_8
#undef WARD_DETAIL_DECLS_8
#undef WARD_DETAIL_NAMES_9
#undef WARD_DETAIL_DECLS_9
#undef WARD_DETAIL_NAMES_10
#undef WARD_DETAIL_DECLS_10
#undef WARD_DETAIL_NAMES_11
#undef WARD_DETAIL_DECLS_11
#undef WARD_DETAIL_NAMES_12
#undef WARD_DETAIL_DECLS_12
#undef WARD_DETAIL_NAMES_13
#undef WARD_DETAIL_DECLS_13
#undef WARD_DETAIL_NAMES_14
#undef WARD_DETAIL_DECLS_14
#undef WARD_DETAIL_NAMES_15
#undef WARD_DETAIL_DECLS_15
#undef WARD_DETAIL_NAMES_16
#undef WARD_DETAIL_DECLS_16
#undef WARD_DETAIL_NAMES_17
#undef WARD_DETAIL_DECLS_17
#undef WARD_DETAIL_NAMES_18
#undef WARD_DETAIL_DECLS_18
#undef WARD_DETAIL_NAMES_19
#undef WARD_DETAIL_DECLS_19
#undef WARD_DETAIL_NAMES_20
#undef WARD_DETAIL_DECLS_20
#undef WARD_DETAIL_NAMES_21
#undef WARD_DETAIL_DECLS_21
#undef WARD_DETAIL_NAMES_22
#undef WARD_DETAIL_DECLS_22
#undef WARD_DETAIL_NAMES_23
#undef WARD_DETAIL_DECLS_23
#undef WARD_DETAIL_NAMES_24
#undef WARD_DETAIL_DECLS_24

}  // namespace ward::detail
