// Combiners: how an Event<Sig, Combiner> folds the values of the handlers that ran into what
// raise() returns (Raised::value). The default is combine::last (combine::none for void events).
//
// A combiner is any default-constructible class with
//   using result_type = ...;   void add(const R&);   result_type finish() &&;
// (for events returning void: void add();). A fresh combiner is made for every raise; add() is
// called with the value of every synchronous handler that succeeded, in order; finish() once.
//
// A combiner is confined to the raise that made it (one thread, one raise) and needs no locking;
// a user-written one must not share mutable state between raises without synchronising it.
#pragma once

#include <optional>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace ward {
namespace combine {

namespace detail {
// Storage for last/first_success. For small trivially copyable R it is a plain value plus a flag
// rather than an optional: the value is then always initialised, so g++ keeps it in a register
// on the one-handler raise path instead of parking a maybe-uninitialised payload on the stack
// (a store-forwarding round trip on the critical path). finish() rebuilds the optional from the
// value for the same reason (a wide copy of a just-written optional defeats store forwarding).
template <class R, bool Plain = std::is_trivially_copyable_v<R> && std::is_default_constructible_v<R> &&
                                sizeof(R) <= 2 * sizeof(void*)>
class Maybe {
 public:
  bool has() const noexcept { return v_.has_value(); }
  template <class V>
  void set(V&& v) {
    v_ = std::forward<V>(v);
  }
  std::optional<R> take() && {
    if (v_) return std::move(*v_);
    return std::nullopt;
  }

 private:
  std::optional<R> v_;
};
template <class R>
class Maybe<R, true> {
 public:
  bool has() const noexcept { return has_; }
  void set(const R& v) noexcept {
    v_ = v;
    has_ = true;
  }
  std::optional<R> take() && noexcept {
    if (has_) return v_;
    return std::nullopt;
  }

 private:
  R v_{};
  bool has_ = false;
};
}  // namespace detail

// The value of the last handler that succeeded (nullopt if none did).
template <class R>
class last {
 public:
  using result_type = std::optional<R>;
  void add(const R& v) { v_.set(v); }
  void add(R&& v) { v_.set(std::move(v)); }
  result_type finish() && { return std::move(v_).take(); }

 private:
  detail::Maybe<R> v_;
};

// The value of the first handler that succeeded (nullopt if none did). Later handlers still run.
template <class R>
class first_success {
 public:
  using result_type = std::optional<R>;
  void add(const R& v) {
    if (!v_.has()) v_.set(v);
  }
  void add(R&& v) {
    if (!v_.has()) v_.set(std::move(v));
  }
  result_type finish() && { return std::move(v_).take(); }

 private:
  detail::Maybe<R> v_;
};

// true if every handler that succeeded returned true (so true if none ran).
class all_true {
 public:
  using result_type = bool;
  void add(bool v) noexcept { v_ = v_ && v; }
  result_type finish() && noexcept { return v_; }

 private:
  bool v_ = true;
};

// true if any handler that succeeded returned true (so false if none ran).
class any_true {
 public:
  using result_type = bool;
  void add(bool v) noexcept { v_ = v_ || v; }
  result_type finish() && noexcept { return v_; }

 private:
  bool v_ = false;
};

// The sum of the values, starting from R{}.
template <class R>
class sum {
 public:
  using result_type = R;
  void add(const R& v) { v_ += v; }
  result_type finish() && { return std::move(v_); }

 private:
  R v_{};
};

// Every value, in handler order.
template <class R>
class collect {
 public:
  using result_type = std::vector<R>;
  void add(const R& v) { v_.push_back(v); }
  void add(R&& v) { v_.push_back(std::move(v)); }
  result_type finish() && { return std::move(v_); }

 private:
  std::vector<R> v_;
};

// For events returning void: nothing to combine.
class none {
 public:
  using result_type = std::monostate;
  void add() noexcept {}
  result_type finish() && noexcept { return {}; }
};

}  // namespace combine

}  // namespace ward
