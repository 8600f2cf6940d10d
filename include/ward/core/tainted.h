// Tainted<T>: a value an extension produced, which the host may not use until a verifier has
// accepted it (after RLBox's tainted types). The only ways out are verify(), which runs a
// predicate and turns a rejection into an Errc::bad_data error, and the loudly named
// unverified_value_i_trust_it(), which stands out in review.
#pragma once

#include <concepts>
#include <string>
#include <utility>

#include "ward/core/error.h"

namespace ward {

template <class T>
class Tainted {
 public:
  explicit Tainted(T v) : v_(std::move(v)) {}

  // Returns the value if `ok(value)` holds; otherwise an Errc::bad_data error naming `what`.
  template <std::predicate<const T&> Pred>
  [[nodiscard]] Result<T> verify(Pred&& ok, std::string_view what = "value") const& {
    if (!std::forward<Pred>(ok)(v_)) return fail(Errc::bad_data, "rejected " + std::string(what));
    return v_;
  }
  template <std::predicate<const T&> Pred>
  [[nodiscard]] Result<T> verify(Pred&& ok, std::string_view what = "value") && {
    if (!std::forward<Pred>(ok)(v_)) return fail(Errc::bad_data, "rejected " + std::string(what));
    return std::move(v_);
  }

  // Turns the value into something else that is safe by construction (a clamp, a lookup).
  template <class F>
  [[nodiscard]] auto copy_and_verify(F&& f) const -> decltype(std::forward<F>(f)(std::declval<const T&>())) {
    return std::forward<F>(f)(v_);
  }

  // Escape hatch for values any content is acceptable for (a checksum to print, a counter).
  [[nodiscard]] const T& unverified_value_i_trust_it() const& { return v_; }

 private:
  T v_;
};

}  // namespace ward
