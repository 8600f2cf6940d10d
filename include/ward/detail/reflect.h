// Just enough aggregate reflection to pass a C struct by value across a domain: the child calls
// the plugin through libffi, which must know the struct's field types to follow the C calling
// convention (on x86-64 a {double, double} travels in two SSE registers, a {int, int} in one
// general register). Fields are found by counting how many initialisers the aggregate accepts
// and naming them with a structured binding. Supported: fields that are scalars, enums or such
// structs themselves (nested), up to 16 per struct. Arrays inside a by-value struct are not:
// the layout check in interface.h then fails to compile with a message; pass such a struct by
// pointer instead.
#pragma once

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>

namespace ward::detail {

struct any_field {
  template <class T>
  constexpr operator T() const noexcept;  // never defined: unevaluated use only
};

template <class T, std::size_t N>
concept aggregate_with = []<std::size_t... I>(std::index_sequence<I...>) {
  return requires { T{(static_cast<void>(I), any_field{})...}; };
}(std::make_index_sequence<N>{});

template <class T, std::size_t N = 0>
consteval std::size_t field_count() {
  if constexpr (N > 16) return 17;  // too many: reported by the layout check
  else if constexpr (aggregate_with<T, N + 1>) return field_count<T, N + 1>();
  else return N;
}

#define WARD_DETAIL_BIND(N, ...)                                                        \
  if constexpr (n == N) {                                                               \
    using R = decltype([](T& t) {                                                       \
      auto& [__VA_ARGS__] = t;                                                          \
      return [](auto&... f) { return std::tuple<std::remove_cvref_t<decltype(f)>...>{}; }(__VA_ARGS__); \
    }(std::declval<T&>()));                                                             \
    return R{};                                                                         \
  } else

// std::tuple of T's field types (default-constructed values; only the type matters).
template <class T>
constexpr auto field_types() {
  constexpr std::size_t n = field_count<T>();
  WARD_DETAIL_BIND(1, a)
  WARD_DETAIL_BIND(2, a, b)
  WARD_DETAIL_BIND(3, a, b, c)
  WARD_DETAIL_BIND(4, a, b, c, d)
  WARD_DETAIL_BIND(5, a, b, c, d, e)
  WARD_DETAIL_BIND(6, a, b, c, d, e, f)
  WARD_DETAIL_BIND(7, a, b, c, d, e, f, g)
  WARD_DETAIL_BIND(8, a, b, c, d, e, f, g, h)
  WARD_DETAIL_BIND(9, a, b, c, d, e, f, g, h, i)
  WARD_DETAIL_BIND(10, a, b, c, d, e, f, g, h, i, j)
  WARD_DETAIL_BIND(11, a, b, c, d, e, f, g, h, i, j, k)
  WARD_DETAIL_BIND(12, a, b, c, d, e, f, g, h, i, j, k, l)
  WARD_DETAIL_BIND(13, a, b, c, d, e, f, g, h, i, j, k, l, m)
  WARD_DETAIL_BIND(14, a, b, c, d, e, f, g, h, i, j, k, l, m, o)
  WARD_DETAIL_BIND(15, a, b, c, d, e, f, g, h, i, j, k, l, m, o, p)
  WARD_DETAIL_BIND(16, a, b, c, d, e, f, g, h, i, j, k, l, m, o, p, q)
  { return std::tuple<>{}; }
}
#undef WARD_DETAIL_BIND

template <class T>
using field_tuple = decltype(field_types<T>());

}  // namespace ward::detail
