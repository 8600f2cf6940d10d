// C callbacks: a host function the extension calls back through a plain C function pointer,
// with the `void *user_data` C APIs pair it with (sqlite3_exec, qsort_r-style iterators, SAX
// handlers).
//
//   WARD_CALLBACK(sqlite3_callback, ward::user_data(0), ward::strings(2, 1), ward::strings(3, 1));
//   WARD_INTERFACE(db_api, (exec, ward::cstring(1), ward::callback(2, 3), ward::nullable(2)));
//   int row(void *state, int n, char **values, char **names) { ... return 0; }
//   lib.call<&db_api::exec>(db, "select ...", &row, &my_state);
//
// WARD_CALLBACK(FnPtrType, annotations...) declares a callback type, at global scope before the
// WARD_INTERFACE that uses it. Its parameters are annotated as a host service's are (every kind
// a host service takes, plus ward::strings), and exactly one, a void *, is ward::user_data(k).
// Callbacks return values like any function. One declaration per C function-pointer type (two
// typedefs of the same type are one type to C++).
//
// ward::callback(i, ud) on an interface function: parameter i is such a callback (null only with
// ward::nullable(i)), ud its void *user data. The host passes its own function and user data as
// in C. ward registers the pair in the domain and passes the extension a real function pointer
// (a stub in the extension's process, one per callback type) and, instead of the host's user
// data, an unguessable 64-bit token. When the extension calls the stub, the host decodes the
// arguments (checked like a host service's), finds the registration by the token and calls the
// host's function with the host's own user data. A null callback passes null user data.
//
// Lifetime: a registration lasts until the domain ends, so a library may keep the pointer and
// call it in a later call (set a handler, then parse); the host's function and user data must
// stay valid that long. Registering the same pair again gives the same token. A domain holds at
// most Domain::kMaxCallbacks registrations; one more fails the call with Errc::limit.
// Trust: a token the domain never issued, or one issued for another callback type, in the
// user-data parameter is a violation that ends the extension; so is any malformed argument.
// A callback runs on the thread of the call that is in progress when the extension calls it;
// it may call into the same extension again (nesting, within Policy::max_nesting).
// Callbacks are not host services: a policy's grants do not restrict them (the host hands each
// one over explicitly).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <tuple>
#include <utility>

#include "ward/iface/interface.h"

namespace ward {

// The one-function "service table" a callback type crosses as: the child builds its stub from
// this table's schema, the host dispatches to it like any service.
template <class FnPtr>
struct callback_table {
  FnPtr fn;
};

// Parameter i is a callback declared with WARD_CALLBACK; parameter user_data_index its void *.
constexpr Ann callback(std::uint8_t i, std::uint8_t user_data_index) {
  return Ann{.k = Ann::K::callback, .index = i, .peer = user_data_index};
}
// In WARD_CALLBACK: parameter k is the user data (a void *), which identifies the registration.
constexpr Ann user_data(std::uint8_t k) { return Ann{.k = Ann::K::user_data, .index = k}; }

namespace detail {

// The index of the user-data parameter of callback F (arity if none).
template <class F>
consteval std::size_t user_data_index() {
  std::size_t n = 0, at = F::arity;
  for (const Ann& a : F::anns)
    if (a.k == Ann::K::user_data) ++n, at = a.index;
  return n == 1 ? at : F::arity;
}

template <class F>
consteval bool callback_ok() {
  for (const Ann& a : F::anns)
    if (a.k == Ann::K::callback || a.k == Ann::K::services) return false;
  return user_data_index<F>() < F::arity;
}

}  // namespace detail
}  // namespace ward

#define WARD_CALLBACK(FnPtr, ...)                                                                      \
  template <>                                                                                          \
  struct ward::interface_traits<ward::callback_table<FnPtr>> {                                         \
    static constexpr std::string_view name = "callback " #FnPtr;                                       \
    static constexpr auto fns =                                                                        \
        std::make_tuple(::ward::detail::Fn<&ward::callback_table<FnPtr>::fn __VA_OPT__(, ) __VA_ARGS__>{ \
            "callback " #FnPtr});                                                                      \
    static_assert(std::tuple_element_t<0, std::remove_cvref_t<decltype(fns)>>::checked);               \
    static_assert(::ward::detail::callback_ok<std::tuple_element_t<0, std::remove_cvref_t<decltype(fns)>>>(), \
                  "ward: a WARD_CALLBACK needs exactly one ward::user_data(k) parameter, and cannot take "     \
                  "service tables or callbacks itself");                                               \
  }
