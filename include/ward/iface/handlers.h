// Handler structs: a C struct of callbacks passed with one user-data pointer in the same call,
// as event parsers take them (libxml2's xmlSAXHandler, expat-style tables).
//
//   WARD_HANDLERS(xmlSAXHandler,
//       (startElement, ward::user_data(0), ward::cstring(1), ward::strings(2), ward::nullable(2)),
//       (characters, ward::user_data(0), ward::in(1, 2)),
//       (endDocument, ward::user_data(0)),
//       (initialized));                                   // a data field, copied
//   WARD_LIBRARY(sax_lib, (xmlSAXUserParseMemory, ward::handlers(0, 1), ward::in(2, 3)));
//   xmlSAXHandler sax{};  sax.startElement = &on_start;  ...
//   (*lib)->xmlSAXUserParseMemory(&sax, &my_state, doc, len);
//
// WARD_HANDLERS(Struct, entries...) declares the struct, at global scope before the interface
// that takes it. An entry names a field. A function-pointer field is annotated like a
// WARD_CALLBACK (every kind a host service takes, plus ward::strings; exactly one
// ward::user_data(k)); a scalar data field takes no annotations and is copied as the host set it.
// Fields not named are null (functions) or zero (data) in the extension's copy: a pointer data
// field cannot be named (a host address means nothing in the extension and would tell it the
// host's layout), nor can a variadic function (libffi cannot forward C varargs), so a field like
// SAX's `error(void *ctx, const char *msg, ...)` stays null and the library falls back to its
// default (libxml2 prints the message to its own stderr).
//
// ward::handlers(i, ud) on an interface function: parameter i points to such a struct (null only
// with ward::nullable(i)), ud is its void *user data. The host passes its own struct, filled with
// its own functions (and nulls), and its own user data, as in C. ward registers the pair with the
// domain (as a callback registration: the same registry, limits and token rules, callback.h) and
// passes the extension a copy of the struct in which every declared field the host set non-null
// is a stub for THAT field (one per field: two fields of one signature stay apart), and, instead
// of the user data, the registration's token. When the library calls a stub with the token as
// its user-data argument, the host decodes the arguments (checked like a host service's), finds
// the registration and calls the field of the host's struct with the host's own user data.
//
// Lifetime: the extension's copy lives in the call's frame: valid during the call (a library
// that keeps the struct past the call must copy it, as libxml2's push parser does). The
// registration lasts until the domain ends. The host's struct is read when a stub is called, so
// it must stay valid while the library may call; a field the host cleared since the call made
// its stub is skipped (the stub returns a zero result).
// Trust: a token the domain never issued, or one of a callback or another struct type, is a
// violation that ends the extension; so is any malformed argument.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ward/iface/callback.h"
#include "ward/iface/interface.h"

namespace ward {

// Parameter i points to a struct declared with WARD_HANDLERS; parameter user_data_index is its void *.
constexpr Ann handlers(std::uint8_t i, std::uint8_t user_data_index) {
  return Ann{.k = Ann::K::handlers, .index = i, .peer = user_data_index};
}

namespace detail {

template <class T>
inline constexpr bool is_variadic_fn_ptr = false;
template <class R, class... A>
inline constexpr bool is_variadic_fn_ptr<R (*)(A..., ...)> = true;

// A data field of a handler struct, copied into the extension's copy as the host set it.
template <auto M>
struct DataField {
  using owner = typename member_of<decltype(M)>::owner;
  using type = typename member_of<decltype(M)>::type;
  static_assert(std::is_arithmetic_v<type> || std::is_enum_v<type>,
                "ward: a WARD_HANDLERS data field must be an integer, floating point or enum field: pointer fields "
                "stay null in the extension's copy (a host address means nothing there), and other types are not "
                "supported");
  static void copy(owner& to, const owner& from) { to.*M = from.*M; }
  const char* name;
};

template <class T>
struct is_fn_entry : std::false_type {};
template <auto M, Ann... As>
struct is_fn_entry<Fn<M, As...>> : std::true_type {};

// One entry of WARD_HANDLERS: a function field becomes a Fn (checked like a callback), anything
// else a DataField.
template <auto M, Ann... As>
consteval auto handler_entry(const char* name) {
  using T = typename member_of<decltype(M)>::type;
  if constexpr (is_variadic_fn_ptr<T>) {
    static_assert(sizeof(T) == 0,
                  "ward: a variadic callback (like SAX's error(ctx, msg, ...)) cannot cross: leave it out of "
                  "WARD_HANDLERS, so it stays null in the extension's copy");
    return 0;
  } else if constexpr (std::is_pointer_v<T> && std::is_function_v<std::remove_pointer_t<T>>) {
    using F = Fn<M, As...>;
    static_assert(F::checked);
    static_assert(callback_ok<F>(), "ward: each WARD_HANDLERS function needs exactly one ward::user_data(k) parameter, "
                                    "and cannot take service tables or callbacks itself");
    return F{name};
  } else {
    static_assert(sizeof...(As) == 0, "ward: a WARD_HANDLERS data field takes no annotations");
    return DataField<M>{name};
  }
}

// The entries of one kind, from all of them.
template <bool Fns, class Tuple>
constexpr auto entries_of(const Tuple& t) {
  return std::apply(
      [](const auto&... e) {
        return std::tuple_cat([](const auto& x) {
          if constexpr (is_fn_entry<std::remove_cvref_t<decltype(x)>>::value == Fns) return std::make_tuple(x);
          else return std::tuple<>{};
        }(e)...);
      },
      t);
}

// The copy of `host` the extension receives: declared data fields as the host set them, each
// declared function field 1 if the host set it (the child puts that field's stub there), every
// other byte zero.
template <class H>
void extension_copy(const H& host, unsigned char* out) {
  static_assert(std::is_trivially_copyable_v<H> && std::is_standard_layout_v<H>,
                "ward: a WARD_HANDLERS struct must be a plain C struct");
  H copy;
  std::memset(&copy, 0, sizeof copy);
  std::apply([&](const auto&... d) { (d.copy(copy, host), ...); }, interface_traits<H>::data);
  std::memcpy(out, &copy, sizeof(H));
  std::apply(
      [&](const auto&... f) {
        ((host.*(std::remove_cvref_t<decltype(f)>::member) ? (void)(out[member_offset<std::remove_cvref_t<decltype(f)>::member>()] = 1)
                                                           : (void)0),
         ...);
      },
      interface_traits<H>::fns);
}

}  // namespace detail
}  // namespace ward

#define WARD_DETAIL_HANDLER(H, entry) WARD_DETAIL_HANDLER_I(H, WARD_DETAIL_UNPAREN entry)
#define WARD_DETAIL_HANDLER_I(H, ...) WARD_DETAIL_HANDLER_II(H, __VA_ARGS__)
#define WARD_DETAIL_HANDLER_II(H, name, ...) \
  ::ward::detail::handler_entry<&H::name __VA_OPT__(, ) __VA_ARGS__>(#H "::" #name)

#define WARD_HANDLERS(H, ...)                                                                              \
  template <>                                                                                              \
  inline constexpr bool ward::is_handlers_v<H> = true;                                                     \
  template <>                                                                                              \
  struct ward::interface_traits<H> {                                                                       \
    static constexpr std::string_view name = #H;                                                           \
    static constexpr auto entries = std::make_tuple(WARD_DETAIL_FOR_EACH(WARD_DETAIL_HANDLER, H, __VA_ARGS__)); \
    static constexpr auto fns = ::ward::detail::entries_of<true>(entries);                                 \
    static constexpr auto data = ::ward::detail::entries_of<false>(entries);                               \
  }
