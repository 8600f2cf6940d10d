// The marker `ward gen` writes where a C header does not say what a pointer is: a compile-time
// error that carries the question.
//
//   WARD_LIBRARY(lib, (read_into, ward::undecided<"read_into: param 1 (char *buf) ...">));
//
// Using ward::undecided<"..."> anywhere (an annotation list, a WARD_CALLBACK) fails the build
// with "ward gen left a pointer undecided" and the text in the instantiation note (g++ and clang
// print the template argument), so a generated declaration cannot be used until every pointer it
// could not decide has been declared by hand. Nothing else in ward refers to it.
#pragma once

#include <cstddef>

#include "ward/iface/interface.h"

namespace ward {
namespace detail {
// A string literal as a template argument (the question the marker carries).
template <std::size_t N>
struct gen_text {
  char s[N];
  consteval gen_text(const char (&v)[N]) {
    for (std::size_t i = 0; i < N; ++i) s[i] = v[i];
  }
};
template <gen_text T>
inline constexpr bool left_undecided = false;
}  // namespace detail

template <detail::gen_text T>
struct undecided_t {
  static_assert(detail::left_undecided<T>,
                "ward gen left a pointer undecided: declare it as the text in undecided<...> says, then delete the marker");
  // Converts to an annotation (a harmless per-function one) so that the error above is the first
  // one reported, not a type mismatch. Questions avoid apostrophes: g++ prints them escaped.
  consteval operator Ann() const { return Ann{.k = Ann::K::idempotent}; }
};
template <detail::gen_text T>
inline constexpr undecided_t<T> undecided{};

}  // namespace ward
