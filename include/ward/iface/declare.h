// Declaring an interface: WARD_INTERFACE (a C struct of function pointers) and WARD_LIBRARY (a
// library's exported functions) turn annotated entries into detail::Fn records, each checked at
// compile time (detail/checks.h), plus the call proxy; and the compile-time walks over them
// (a function's index, the service tables an interface hands out). Include interface.h.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ward/iface/interface.h"

namespace ward {
namespace detail {

// Checked by Fn (detail/checks.h); declared here so this header reads in any include order.
template <class F, std::size_t I>
struct CheckParam;
template <class F>
struct CheckRet;
template <class F>
struct CheckKeys;

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
  static constexpr bool is_idempotent = has_flag(anns, Ann::K::idempotent);
  // [compaction] (recovery/replay_log.h) The function's replay_by_key or cancels annotation
  // (replay_latest is replay_by_key without key parameters); K::nullable if none.
  static constexpr Ann compaction = [] {
    for (const Ann& a : anns)
      if (a.k == Ann::K::replay_by_key || a.k == Ann::K::cancels) return a;
    if (has_flag(anns, Ann::K::replay_latest)) return Ann{.k = Ann::K::replay_by_key};
    return Ann{.k = Ann::K::nullable};
  }();
  static constexpr bool keyed = compaction.k == Ann::K::replay_by_key;
  static constexpr bool cancels = compaction.k == Ann::K::cancels;
  // Closes or frees one of its parameters (ward::releases): never logged, drops what was.
  static constexpr bool releases_any = has_flag(anns, Ann::K::releases);
  static constexpr bool replays =
      !releases_any && (has_flag(anns, Ann::K::replay) || keyed || cancels);
  static constexpr bool returns_ext = has_flag(anns, Ann::K::returns_ext_handle);
  static constexpr bool returns_opq = has_flag(anns, Ann::K::returns_opaque);
  template <std::size_t I>
  static constexpr bool is_ext_handle = [] {
    for (const Ann& a : anns)
      if (a.k == Ann::K::ext_handle && a.index == I) return true;
    return false;
  }();
  static constexpr Ann returned_handle = [] {
    for (const Ann& a : anns)
      if (a.k == Ann::K::returns_handle) return a;
    return Ann{.k = Ann::K::nullable};
  }();
  // Last: the checks read the members above.
  static constexpr bool checked = []<std::size_t... I>(std::index_sequence<I...>) {
    return (CheckParam<Fn, I>::value && ...) && CheckRet<Fn>::value && CheckKeys<Fn>::value;
  }(std::make_index_sequence<arity>{});

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
  // A callback's signature is a table of its own (iface/callback.h); a handler struct is one.
  static constexpr bool cb = [] {
    if constexpr (I < F::arity) return ann_for(F::anns, I).count == 1 && ann_for(F::anns, I).ann.k == Ann::K::callback;
    else return false;
  }();
  static constexpr bool hs = [] {
    if constexpr (I < F::arity) return ann_for(F::anns, I).count == 1 && ann_for(F::anns, I).ann.k == Ann::K::handlers;
    else return false;
  }();
  using next = std::conditional_t<svc || hs, push_unique<L, pointee_t<P>>,
                                  std::conditional_t<cb, push_unique<L, callback_table<P>>, std::type_identity<L>>>::type;
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
    static_assert(::ward::detail::check_cancels<std::remove_cvref_t<decltype(fns)>>());        \
  };                                                                                           \
  template <class Owner>                                                                       \
  struct ward::proxy<Api, Owner> {                                                             \
    explicit proxy(Owner* o) : WARD_DETAIL_FOR_EACH(WARD_DETAIL_PROXY_INIT, Api, __VA_ARGS__) {} \
    WARD_DETAIL_FOR_EACH_NOSEP(WARD_DETAIL_PROXY_MEMBER, Api, __VA_ARGS__)                     \
  }
