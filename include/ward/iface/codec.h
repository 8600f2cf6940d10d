// The codec: the one table of parameter and result kinds. Every place a value crosses between
// host and extension goes through its kind's row here and nowhere else:
//   describe  the schema::Param both sides agree on (core/schema.h)
//   encode    host value -> frame slot (host stubs, iface/stubs.h: calls into the extension)
//   decode    frame slot -> host copy, verified (service dispatchers: calls from the extension)
//   capture   host value -> a copy the host owns (the supervisor's replay log)
//   arg       host copy  -> the C argument (dispatchers and replay hand it to a C function)
// The child side of the process backend has the mirror table over schema::Kind
// (src/helper/callee.cc); a kind is added to both (docs/architecture.md, "Adding a kind").
//
// Exhaustive: ParamKind and ResultKind end in `count_`, and a static_assert below instantiates
// the row of every enumerator, so a kind without a row does not compile.
//
// Trust: encode and capture read host values (trusted). decode reads slots the extension wrote:
// every offset is checked by the Upcall, every value copied once into host memory and verified
// there (detail::sanitize: bools normalised, enums in range; values.h), and what fails is a
// violation that ends the extension. Results (ResultCodec::decode) likewise, as bad_data or a
// violation.
//
// This header holds the kinds, their classification and the check that every kind has its row;
// the rows themselves are in ward/iface/codec/, one header per C shape, included below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ward/backend/crossing.h"
#include "ward/backend/sandbox_heap.h"
#include "ward/core/schema.h"
#include "ward/core/tainted.h"
#include "ward/iface/callback.h"
#include "ward/iface/deep.h"
#include "ward/iface/handlers.h"
#include "ward/iface/interface.h"
#include "ward/iface/opaque.h"
#include "ward/iface/values.h"

namespace ward::detail {

template <class F, std::size_t I>
using param_type = std::tuple_element_t<I, typename F::args>;

// ---- shared by the rows ----------------------------------------------------------------------

inline bool mul_overflows(std::uint64_t a, std::uint64_t b, std::uint64_t& out) { return __builtin_mul_overflow(a, b, &out); }

inline constexpr std::string_view kOutOfRange = ": an enum value outside its declared range (ward::enum_range)";

inline std::string param_label(std::size_t i) { return "parameter " + std::to_string(i); }

// A value the extension returned (or left in out data) that no host object may hold.
inline std::unexpected<Error> refused(Call& c, const std::string& what) {
  return std::unexpected(c.decorate(fail(Errc::bad_data, what + std::string(kOutOfRange)).error()));
}

// The schema record of a value of kind `k` and `size` bytes; the rows add what else they say.
consteval schema::Param simple_param(schema::Kind k, std::uint32_t size, bool nullable = false) {
  schema::Param p{};
  p.kind = k;
  p.size = size;
  p.nullable = nullable ? 1 : 0;
  p.count_arg = 0xff;
  return p;
}

// Whether parameter I of F may be null (ward::nullable).
template <class F, std::size_t I>
inline constexpr bool nullable_at = ann_for(F::anns, I).nullable;

// Data to copy back into a host object once the other side is done with it (out and inout
// buffers). `check` (host -> extension only) turns the host's copy of parameter `param`'s bytes
// into what the host object receives: verifies and normalises them, or replaces them (an
// out_opaque pointer becomes its token); an error fails the call before any host object changes.
// Null when the bytes need nothing.
struct CopyBack {
  using Check = Result<void> (*)(Call& c, std::size_t param, void* copy, std::uint64_t bytes);
  void* host = nullptr;
  std::uint64_t off = 0;
  std::uint64_t bytes = 0;
  Check check = nullptr;
  // How much of it holds data after the call (ward::filled, size.h): the integer parameter
  // `index` points to, or the result; all of it when `from` is all.
  struct Filled {
    enum class From : std::uint8_t { all, param, result } from = From::all;
    std::uint8_t index = 0;
    std::uint8_t width = 0;
    bool is_signed = false;
    std::uint32_t elem = 1;  // bytes per element
  } filled{};
  // [deep] A deep out parameter: decoded from the slot at `off` after the call, then written into
  // `deep` (the host's Deep) with the other out data.
  DeepValue* deep = nullptr;
  Result<DeepValue> (*decode_deep)(Call& c, std::uint64_t slot_off) = nullptr;
  // [sqlite] The host object receives only the first `delivered` bytes of the checked copy (an
  // out_text cell becomes the host's char *); 0: all `bytes`.
  std::uint64_t delivered = 0;
  // [sqlite] A token the domain drops once the call succeeded (ward::releases); 0: none.
  std::uint64_t release = 0;
};

// False, but only once a row's member is instantiated for F: a static_assert on it rejects a
// declaration that reaches a direction the row does not support.
template <class F>
inline constexpr bool dependent_false = false;

// What scalars and records share: the host keeps them, and passes them on, by value.
struct ByValue {
  template <class F, std::size_t I>
  using held = std::remove_cv_t<param_type<F, I>>;
  template <class F, std::size_t I, class Args>
  static held<F, I> capture(const Args& args) {
    return std::get<I>(args);
  }
  template <class F, std::size_t I>
  static param_type<F, I> arg(held<F, I>& h) {
    return h;
  }
};

// ---- parameter kinds ----------------------------------------------------------------------------
enum class ParamKind : std::uint8_t {
  scalar,    // integer, floating point, enum, bool (and ward::ext_handle values)
  handle,    // ward::handle<T>: a 64-bit handle to a host object, checked at every crossing
  record,    // trivially copyable struct by value
  cstring,   // const char *, NUL-terminated
  buffer,    // pointer to one element or to `count` elements, in / out / inout
  services,  // pointer to a host service table
  // [opaque] iface/opaque.h
  opaque,      // ward::opaque: the extension's pointer, held by the host as a token
  out_opaque,  // ward::out_opaque: a T ** the extension fills; the host's T * receives a token
  // [callbacks]
  callback,   // a WARD_CALLBACK function pointer: the extension gets a stub, the host's registration a token
  user_data,  // its void *: the token (host -> extension), the registration it names (extension -> host)
  strings,    // char ** / const char **: counted (NULL elements allowed) or NULL-terminated
  shared,    // ward::shared: pointer into a live sandbox allocation, passed in place
  // [deep] descriptors (deep.h, object.h)
  self,      // ward::self: the object a descriptor's function is called through
  deep_out,  // T * out parameter of a WARD_STRUCT type, deep-copied back into a ward::Deep<T>
  // [sqlite] iface/opaque.h, "Texts"
  out_text,  // char **: the string the library allocated comes back as a host copy that is its token
  sentinel,  // a function pointer that is a library constant: its bits, checked to be no address
  // [handlers] iface/handlers.h
  handlers,  // a WARD_HANDLERS struct: the extension gets a copy with a stub per field the host set
  count_
};

template <class F, std::size_t I>
consteval ParamKind param_kind() {
  using P = param_type<F, I>;
  constexpr ParamAnn pa = ann_for(F::anns, I);
  if constexpr (std::is_pointer_v<P>) {
    if constexpr (pa.count == 1 && pa.ann.k == Ann::K::cstring) return ParamKind::cstring;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::opaque) return ParamKind::opaque;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::out_opaque) return ParamKind::out_opaque;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::services) return ParamKind::services;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::callback) return ParamKind::callback;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::user_data) return ParamKind::user_data;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::strings) return ParamKind::strings;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::shared) return ParamKind::shared;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::self) return ParamKind::self;
    else if constexpr (described<pointee_t<P>>) return ParamKind::deep_out;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::out_text) return ParamKind::out_text;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::sentinel) return ParamKind::sentinel;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::handlers) return ParamKind::handlers;
    else return ParamKind::buffer;
  } else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::handle) {
    return ParamKind::handle;
  } else if constexpr (is_scalar_arg<P>) {
    return ParamKind::scalar;
  } else {
    return ParamKind::record;
  }
}

// One row per kind. Each row has: held<F, I> (what the host keeps of a value it copied),
// describe, encode, decode, capture and arg; `late` rows decode after every other parameter
// (a buffer needs its count parameter decoded first).
template <ParamKind K>
struct Codec;

// ---- result kinds -------------------------------------------------------------------------------
enum class ResultKind : std::uint8_t {
  none,    // void
  scalar,  // integer, floating point, enum, bool
  handle,  // ward::returns_handle<T>: checked like a handle parameter
  record,  // trivially copyable struct by value
  string,  // const char * with ward::returns_string, copied out
  // [opaque]
  opaque,  // ward::returns_opaque: the extension's pointer, as a ward::Opaque<T> token
  deep,    // [deep] const T * with ward::returns_deep, deep-copied out
  count_
};

template <class F>
consteval ResultKind result_kind() {
  using R = typename F::ret;
  if constexpr (std::is_void_v<R>) return ResultKind::none;
  else if constexpr (F::returns_opq) return ResultKind::opaque;
  else if constexpr (std::is_pointer_v<R> && has_flag(F::anns, Ann::K::returns_deep)) return ResultKind::deep;
  else if constexpr (std::is_pointer_v<R>) return ResultKind::string;
  else if constexpr (F::returned_handle.k == Ann::K::returns_handle) return ResultKind::handle;
  else if constexpr (is_scalar_arg<R>) return ResultKind::scalar;
  else return ResultKind::record;
}

// One row per result kind: host<F> (what a typed call returns), describe, decode (the result
// the extension sent, on the host stub's side) and encode (a host service's result, on the
// dispatcher's side).
template <ResultKind K>
struct ResultCodec;

}  // namespace ward::detail

// The rows, one header per C shape. Order matters only where a row names another: text uses
// OutPointer (opaque), sandbox uses the buffer row, callback's user data the handlers row.
#define WARD_DETAIL_CODEC_ROWS
#include "ward/iface/codec/scalar.h"
#include "ward/iface/codec/buffer.h"
#include "ward/iface/codec/sandbox.h"
#include "ward/iface/codec/opaque.h"
#include "ward/iface/codec/text.h"
#include "ward/iface/codec/deep.h"
#include "ward/iface/codec/handlers.h"
#include "ward/iface/codec/callback.h"
#undef WARD_DETAIL_CODEC_ROWS

namespace ward::detail {

template <class F, std::size_t I>
using codec_of = Codec<param_kind<F, I>()>;

// The schema description of parameter I of function F.
template <class F, std::size_t I>
consteval schema::Param param_desc() {
  return codec_of<F, I>::template describe<F, I>();
}

template <class F>
using result_codec_of = ResultCodec<result_kind<F>()>;

template <class F>
consteval schema::Param ret_desc() {
  return result_codec_of<F>::template describe<F>();
}

// What a typed call returns: void, or Tainted<...> of the result.
template <class F>
using host_result_t = typename result_codec_of<F>::template host<F>;

// Every kind has its row: instantiating an enumerator without one is an incomplete type.
template <std::size_t... K>
consteval bool every_kind_has_a_row(std::index_sequence<K...>) {
  return ((sizeof(Codec<static_cast<ParamKind>(K)>) > 0) && ...);
}
template <std::size_t... K>
consteval bool every_result_has_a_row(std::index_sequence<K...>) {
  return ((sizeof(ResultCodec<static_cast<ResultKind>(K)>) > 0) && ...);
}
static_assert(every_kind_has_a_row(std::make_index_sequence<static_cast<std::size_t>(ParamKind::count_)>{}));
static_assert(every_result_has_a_row(std::make_index_sequence<static_cast<std::size_t>(ResultKind::count_)>{}));

// ---- whole argument lists -----------------------------------------------------------------------
template <class F, class Seq = std::make_index_sequence<F::arity>>
struct held_args_of;
template <class F, std::size_t... I>
struct held_args_of<F, std::index_sequence<I...>> {
  using type = std::tuple<typename codec_of<F, I>::template held<F, I>...>;
};
// The host's own copy of a call's arguments (decoded from the extension, or captured for replay).
template <class F>
using held_args = typename held_args_of<F>::type;

// The host function a callback's dispatcher runs: the registration its user data named
// (iface/callback.h), cast back to the callback's type; for a handler struct's field
// (iface/handlers.h), that field of the host's struct, read now (null if the host cleared it).
template <class F>
auto callback_fn(held_args<F>& held) {
  using Api = typename F::api;
  const CallbackTarget& t = std::get<user_data_index<F>()>(held);
  if constexpr (is_handlers_v<Api>) return static_cast<const Api*>(t.handlers)->*F::member;
  else return reinterpret_cast<std::remove_cvref_t<decltype(std::declval<Api&>().*F::member)>>(t.fn);
}

// Deep copy of a call's arguments, for replaying it later (the supervisor's log).
template <class F, class Args>
held_args<F> capture_args(const Args& args) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return held_args<F>{codec_of<F, I>::template capture<F, I>(args)...};
  }(std::make_index_sequence<F::arity>{});
}

// The C arguments for a held copy; pointers point into `held`, which must outlive them.
template <class F>
typename F::args args_from(held_args<F>& held) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return typename F::args{codec_of<F, I>::template arg<F, I>(std::get<I>(held))...};
  }(std::make_index_sequence<F::arity>{});
}

// The wire description of a whole function.
template <class F>
constexpr schema::Fn fn_desc(std::uint32_t offset) {
  schema::Fn d{};
  d.offset = offset;
  d.nparams = static_cast<std::uint32_t>(F::arity);
  d.ret = ret_desc<F>();
  [&]<std::size_t... I>(std::index_sequence<I...>) { ((d.params[I] = param_desc<F, I>()), ...); }(
      std::make_index_sequence<F::arity>{});
  return d;
}

}  // namespace ward::detail
