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
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ward/backend/crossing.h"
#include "ward/core/schema.h"
#include "ward/core/tainted.h"
#include "ward/iface/callback.h"
#include "ward/iface/interface.h"
#include "ward/iface/values.h"

namespace ward::detail {

template <class F, std::size_t I>
using param_type = std::tuple_element_t<I, typename F::args>;

// ---- bits and counts ----------------------------------------------------------------------------
// A scalar the extension passed in a register; false if it is an enum outside its declared
// range. A bool takes its low byte, normalised (any non-zero byte is true).
template <class T>
[[nodiscard]] bool from_bits(std::uint64_t bits, T& out) {
  std::memcpy(&out, &bits, sizeof(T));
  return sanitize(out);
}

template <class T>
std::uint64_t to_bits(const T& v) {
  std::uint64_t bits = 0;
  if constexpr (std::is_same_v<T, bool>) bits = v ? 1 : 0;
  else std::memcpy(&bits, &v, sizeof(T));
  return bits;
}

// Element count named by a count parameter; negative counts are an error.
template <class T>
bool count_of(const T& v, std::uint64_t& out) {
  if constexpr (std::is_signed_v<T>) {
    if (v < 0) return false;
  }
  out = static_cast<std::uint64_t>(v);
  return true;
}

inline bool mul_overflows(std::uint64_t a, std::uint64_t b, std::uint64_t& out) { return __builtin_mul_overflow(a, b, &out); }

inline constexpr std::string_view kOutOfRange = ": an enum value outside its declared range (ward::enum_range)";

inline std::string param_label(std::size_t i) { return "parameter " + std::to_string(i); }

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
// buffers). `check` verifies (and normalises) a host copy of the bytes; null when the element
// type has no invalid bit patterns.
struct CopyBack {
  void* host = nullptr;
  std::uint64_t off = 0;
  std::uint64_t bytes = 0;
  bool (*check)(void* copy, std::uint64_t bytes) = nullptr;
};

template <class E>
bool check_elements(void* copy, std::uint64_t bytes) {
  return sanitize_all(static_cast<E*>(copy), bytes / sizeof(E));
}
template <class E>
constexpr auto checker_for() -> bool (*)(void*, std::uint64_t) {
  if constexpr (needs_check<E>) return &check_elements<E>;
  else return nullptr;
}

// A buffer's elements as the host keeps them: std::vector<bool> packs bits and has no data(), so
// a bool is kept in a struct of one bool (same size and layout) instead.
struct bool_slot {
  bool v;
};
template <class E>
using slot_t = std::conditional_t<std::is_same_v<E, bool>, bool_slot, E>;

// ---- parameter kinds ----------------------------------------------------------------------------
enum class ParamKind : std::uint8_t {
  scalar,    // integer, floating point, enum, bool (and ward::ext_handle values)
  handle,    // ward::handle<T>: a 64-bit handle to a host object, checked at every crossing
  record,    // trivially copyable struct by value
  cstring,   // const char *, NUL-terminated
  buffer,    // pointer to one element or to `count` elements, in / out / inout
  services,  // pointer to a host service table
  // [callbacks]
  callback,   // a WARD_CALLBACK function pointer: the extension gets a stub, the host's registration a token
  user_data,  // its void *: the token (host -> extension), the registration it names (extension -> host)
  strings,    // char ** / const char **: counted (NULL elements allowed) or NULL-terminated
  count_
};

template <class F, std::size_t I>
consteval ParamKind param_kind() {
  using P = param_type<F, I>;
  constexpr ParamAnn pa = ann_for(F::anns, I);
  if constexpr (std::is_pointer_v<P>) {
    if constexpr (pa.count == 1 && pa.ann.k == Ann::K::cstring) return ParamKind::cstring;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::services) return ParamKind::services;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::callback) return ParamKind::callback;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::user_data) return ParamKind::user_data;
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::strings) return ParamKind::strings;
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

template <>
struct Codec<ParamKind::scalar> : ByValue {
  static constexpr bool late = false;
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    return simple_param(scalar_kind<param_type<F, I>>(), sizeof(param_type<F, I>));
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call&, schema::Slot& s, const Args& args, CopyBack&) {
    s = {to_bits(std::get<I>(args)), 0};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall& up, Held& held, CopyBack&) {
    auto s = WARD_TRY(up.param(I));
    if (!from_bits(s.a, std::get<I>(held))) return up.violation(param_label(I) + std::string(kOutOfRange));
    return {};
  }
};

// A scalar that names a host object: checked (bad handle, wrong type, missing right) before it
// crosses, in either direction.
template <>
struct Codec<ParamKind::handle> : Codec<ParamKind::scalar> {
  template <class F, std::size_t I>
  static constexpr Ann ann = ann_for(F::anns, I).ann;
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack& back) {
    WARD_TRY(c.check_handle(static_cast<std::uint64_t>(std::get<I>(args)), ann<F, I>.type, ann<F, I>.rights, false));
    return Codec<ParamKind::scalar>::encode<F, I>(c, s, args, back);
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall& up, Held& held, CopyBack& back) {
    auto s = WARD_TRY(up.param(I));
    WARD_TRY(up.check_handle(s.a, ann<F, I>.type, ann<F, I>.rights));
    return Codec<ParamKind::scalar>::decode<F, I>(up, held, back);
  }
};

template <>
struct Codec<ParamKind::record> : ByValue {
  static constexpr bool late = true;
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    return record_param<param_type<F, I>>();
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack&) {
    using P = param_type<F, I>;
    auto off = WARD_TRY(c.alloc(sizeof(P), alignof(P) < 16 ? 16 : alignof(P)));
    std::memcpy(c.at(off), &std::get<I>(args), sizeof(P));
    s = {off, sizeof(P)};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall& up, Held& held, CopyBack&) {
    using P = param_type<F, I>;
    auto s = WARD_TRY(up.param(I));
    auto p = WARD_TRY(up.range(s.a, sizeof(P)));
    std::memcpy(&std::get<I>(held), p, sizeof(P));
    if (!sanitize(std::get<I>(held))) return up.violation(param_label(I) + std::string(kOutOfRange));
    return {};
  }
};

template <>
struct Codec<ParamKind::cstring> {
  static constexpr bool late = true;
  template <class F, std::size_t I>
  using held = std::optional<std::string>;  // nullopt: a null pointer
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    return simple_param(schema::Kind::cstring, 1, nullable_at<F, I>);
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack&) {
    const char* v = std::get<I>(args);
    if (!v) {
      if (!nullable_at<F, I>)
        return std::unexpected(
            c.decorate(fail(Errc::misuse, param_label(I) + ": null string (declare ward::nullable to allow it)").error()));
      s = {schema::kNull, 0};
      return {};
    }
    const std::size_t len = std::strlen(v);
    auto off = WARD_TRY(c.alloc(len + 1, 1));
    std::memcpy(c.at(off), v, len + 1);
    s = {off, len};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall& up, Held& held, CopyBack&) {
    auto s = WARD_TRY(up.param(I));
    if (s.a == schema::kNull) {
      if (!nullable_at<F, I>) return up.violation("null string for " + param_label(I));
      std::get<I>(held).reset();
      return {};
    }
    auto str = WARD_TRY(up.string(s.a));
    std::get<I>(held) = std::move(str);
    return {};
  }
  template <class F, std::size_t I, class Args>
  static held<F, I> capture(const Args& args) {
    const char* v = std::get<I>(args);
    return v ? held<F, I>(v) : std::nullopt;
  }
  template <class F, std::size_t I>
  static param_type<F, I> arg(held<F, I>& h) {
    return h ? h->c_str() : nullptr;
  }
};

template <>
struct Codec<ParamKind::buffer> {
  static constexpr bool late = true;
  template <class F, std::size_t I>
  using element = element_t<param_type<F, I>>;
  template <class F, std::size_t I>
  struct Owned {
    std::vector<slot_t<element<F, I>>> v;
    bool null = true;
  };
  template <class F, std::size_t I>
  using held = Owned<F, I>;
  template <class F, std::size_t I>
  static constexpr Ann ann = ann_for(F::anns, I).ann;
  template <class F, std::size_t I>
  static constexpr schema::Dir dir = ann<F, I>.k == Ann::K::in    ? schema::Dir::in
                                     : ann<F, I>.k == Ann::K::out ? schema::Dir::out
                                                                  : schema::Dir::inout;
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    schema::Param p = simple_param(schema::Kind::buffer, sizeof(element<F, I>), nullable_at<F, I>);
    p.dir = dir<F, I>;
    p.count_arg = ann<F, I>.count;
    return p;
  }
  // Elements named by the count parameter (one without a count); false if it is negative.
  template <class F, std::size_t I, class Values>
  static bool count(const Values& values, std::uint64_t& n) {
    n = 1;
    if constexpr (ann<F, I>.count != 0xff) return count_of(std::get<ann<F, I>.count>(values), n);
    else return true;
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack& back) {
    using P = param_type<F, I>;
    auto misuse = [&](std::string what) {
      return std::unexpected(c.decorate(fail(Errc::misuse, param_label(I) + ": " + what).error()));
    };
    std::uint64_t n = 1, bytes = 0;
    if (!count<F, I>(args, n)) return misuse("negative element count");
    if (mul_overflows(n, sizeof(element<F, I>), bytes)) return misuse("element count overflows");
    const P v = std::get<I>(args);
    if (!v) {
      if (!nullable_at<F, I> && bytes != 0)
        return misuse("null buffer with a non-zero size (declare ward::nullable to allow it)");
      s = {schema::kNull, bytes};
      return {};
    }
    auto off = WARD_TRY(c.alloc(bytes));
    if constexpr (dir<F, I> == schema::Dir::out) std::memset(c.at(off), 0, bytes);
    else std::memcpy(c.at(off), static_cast<const void*>(v), bytes);
    if constexpr (dir<F, I> != schema::Dir::in) back = {static_cast<void*>(v), off, bytes, checker_for<element<F, I>>()};
    s = {off, bytes};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall& up, Held& held, CopyBack& back) {
    auto s = WARD_TRY(up.param(I));
    std::uint64_t n = 1, bytes = 0;
    if (!count<F, I>(held, n)) return up.violation("negative element count for " + param_label(I));
    if (mul_overflows(n, sizeof(element<F, I>), bytes)) return up.violation("element count overflows");
    auto& h = std::get<I>(held);
    if (s.a == schema::kNull) {
      if (!nullable_at<F, I> && bytes != 0) return up.violation("null buffer for " + param_label(I));
      return {};
    }
    auto p = WARD_TRY(up.writable(s.a, bytes));
    h.v.resize(n ? n : 1);
    h.null = false;
    if constexpr (dir<F, I> != schema::Dir::out) {
      std::memcpy(h.v.data(), p, bytes);
      if (!sanitize_all(h.v.data(), n)) return up.violation(param_label(I) + std::string(kOutOfRange));
    }
    if constexpr (dir<F, I> != schema::Dir::in) back = {h.v.data(), s.a, bytes};
    return {};
  }
  // In data by value; out data as scratch space of the same size.
  template <class F, std::size_t I, class Args>
  static held<F, I> capture(const Args& args) {
    held<F, I> h;
    const auto v = std::get<I>(args);
    if (!v) return h;
    std::uint64_t n = 1;
    (void)count<F, I>(args, n);
    h.v.resize(n ? n : 1);
    h.null = false;
    if constexpr (dir<F, I> != schema::Dir::out) std::memcpy(h.v.data(), static_cast<const void*>(v), n * sizeof(element<F, I>));
    return h;
  }
  template <class F, std::size_t I>
  static param_type<F, I> arg(held<F, I>& h) {
    return h.null ? nullptr : reinterpret_cast<param_type<F, I>>(h.v.data());
  }
};

// A host service table: the host registers its struct with the domain; the extension receives
// stubs that cross back. Never passed from the extension into the host (null there).
template <>
struct Codec<ParamKind::services> {
  static constexpr bool late = true;
  template <class F, std::size_t I>
  using held = param_type<F, I>;
  template <class F, std::size_t I>
  static constexpr std::uint32_t table = service_id<typename F::api, pointee_t<param_type<F, I>>>();
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    schema::Param p = simple_param(schema::Kind::services, sizeof(void*), nullable_at<F, I>);
    p.table = table<F, I>;
    return p;
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack&) {
    const auto v = std::get<I>(args);
    if (!v) {
      s = {schema::kNull, 0};
    } else {
      c.set_service_impl(table<F, I>, v);
      s = {table<F, I>, 0};
    }
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall&, Held& held, CopyBack&) {
    std::get<I>(held) = nullptr;
    return {};
  }
  template <class F, std::size_t I, class Args>
  static held<F, I> capture(const Args& args) {
    return std::get<I>(args);  // the host's tables outlive the extension
  }
  template <class F, std::size_t I>
  static param_type<F, I> arg(held<F, I>& h) {
    return h;
  }
};

// ---- [callbacks] (iface/callback.h) --------------------------------------------------------------
template <class F>
inline constexpr bool dependent_false = false;

// A callback: the host's function pointer, registered with the domain by its user-data row; the
// extension receives the stub of the callback type's table (by table id). The host keeps and
// replays the pointer itself (ByValue): its function outlives the domain's registrations.
template <>
struct Codec<ParamKind::callback> : ByValue {
  static constexpr bool late = false;
  template <class F, std::size_t I>
  static constexpr std::uint32_t table = service_id<typename F::api, callback_table<param_type<F, I>>>();
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    schema::Param p = simple_param(schema::Kind::callback, sizeof(void*), nullable_at<F, I>);
    p.table = table<F, I>;
    return p;
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack&) {
    if (std::get<I>(args)) {
      s = {table<F, I>, 0};
    } else {
      if (!nullable_at<F, I>)
        return std::unexpected(
            c.decorate(fail(Errc::misuse, param_label(I) + ": null callback (declare ward::nullable to allow it)").error()));
      s = {schema::kNull, 0};
    }
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall&, Held&, CopyBack&) {
    static_assert(dependent_false<F>, "ward: host services and callbacks cannot take callbacks themselves");
    return {};
  }
};

// A callback's user data. Host -> extension: the pair (callback, user data) is registered and
// the token crosses instead of the host's pointer (null with a null callback). Extension ->
// host, in a callback: the token is looked up (a violation unless this domain issued it for this
// callback type) and the host's function gets its own user data.
template <>
struct Codec<ParamKind::user_data> {
  static constexpr bool late = false;
  template <class F, std::size_t I>
  using held = CallbackTarget;  // `user` is what the C function receives
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    return simple_param(schema::Kind::u64, sizeof(void*));  // libffi passes a pointer like this
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack&) {
    constexpr std::size_t cb = ann_for(F::anns, I).ann.peer;
    const auto fn = std::get<cb>(args);
    if (!fn) {
      s = {0, 0};
      return {};
    }
    const CallbackTarget t{Codec<ParamKind::callback>::table<F, cb>, reinterpret_cast<void (*)()>(fn),
                           const_cast<void*>(static_cast<const void*>(std::get<I>(args)))};
    auto token = WARD_TRY(c.register_callback(t));
    s = {token, 0};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall& up, Held& held, CopyBack&) {
    auto s = WARD_TRY(up.param(I));
    auto t = WARD_TRY(up.callback(s.a));
    std::get<I>(held) = t;
    return {};
  }
  template <class F, std::size_t I, class Args>
  static held<F, I> capture(const Args& args) {
    return CallbackTarget{0, nullptr, const_cast<void*>(static_cast<const void*>(std::get<I>(args)))};
  }
  template <class F, std::size_t I>
  static param_type<F, I> arg(held<F, I>& h) {
    return static_cast<param_type<F, I>>(h.user);
  }
};

// An array of C strings. Each side copies every string into the frame and passes an array of
// their offsets (kNull for a NULL element); the receiver gets its own copies and a
// NULL-terminated array of pointers to them.
template <>
struct Codec<ParamKind::strings> {
  static constexpr bool late = true;  // after its count parameter
  struct Owned {
    std::vector<std::optional<std::string>> s;
    std::vector<char*> ptrs;  // built by arg(), pointing into `s`
    bool null = true;
  };
  template <class F, std::size_t I>
  using held = Owned;
  template <class F, std::size_t I>
  static constexpr std::uint8_t count_index = ann_for(F::anns, I).ann.peer;
  template <class F, std::size_t I>
  static constexpr bool counted = count_index<F, I> != 0xff;
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    schema::Param p = simple_param(schema::Kind::strings, sizeof(char*), nullable_at<F, I>);
    p.count_arg = count_index<F, I>;
    return p;
  }
  // How many strings the host's array holds; false for a negative count.
  template <class F, std::size_t I, class Args>
  static bool host_count(const Args& args, std::uint64_t& n) {
    const auto v = std::get<I>(args);
    if constexpr (counted<F, I>) {
      return count_of(std::get<count_index<F, I>>(args), n);
    } else {
      n = 0;
      while (v[n]) ++n;
      return true;
    }
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack&) {
    auto misuse = [&](std::string what) {
      return std::unexpected(c.decorate(fail(Errc::misuse, param_label(I) + ": " + what).error()));
    };
    const auto v = std::get<I>(args);
    if (!v) {
      if (!nullable_at<F, I>) return misuse("null string array (declare ward::nullable to allow it)");
      s = {schema::kNull, 0};
      return {};
    }
    std::uint64_t n = 0, bytes = 0;
    if (!host_count<F, I>(args, n)) return misuse("negative element count");
    if (n == ~0ull || mul_overflows(n + 1, sizeof(std::uint64_t), bytes)) return misuse("element count overflows");
    auto arr = WARD_TRY(c.alloc(bytes, alignof(std::uint64_t)));
    for (std::uint64_t k = 0; k <= n; ++k) {
      std::uint64_t off = schema::kNull;
      if (k < n && v[k]) {
        const std::size_t len = std::strlen(v[k]);
        off = WARD_TRY(c.alloc(len + 1, 1));
        std::memcpy(c.at(off), v[k], len + 1);
      }
      std::memcpy(c.at(arr + k * sizeof off), &off, sizeof off);
    }
    s = {arr, n};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall& up, Held& held, CopyBack&) {
    auto s = WARD_TRY(up.param(I));
    auto& h = std::get<I>(held);
    if (s.a == schema::kNull) {
      if (!nullable_at<F, I>) return up.violation("null string array for " + param_label(I));
      return {};
    }
    std::uint64_t n = s.b, bytes = 0;
    if constexpr (counted<F, I>) {
      if (!count_of(std::get<count_index<F, I>>(held), n)) return up.violation("negative element count for " + param_label(I));
      if (s.b != n) return up.violation(param_label(I) + ": a string array whose length is not its count");
    }
    if (mul_overflows(n, sizeof(std::uint64_t), bytes)) return up.violation("element count overflows");
    auto p = WARD_TRY(up.range(s.a, bytes));
    std::vector<std::uint64_t> offs(n);  // copied once: the extension may change the array meanwhile
    if (n) std::memcpy(offs.data(), p, bytes);
    h.s.reserve(n);
    for (const std::uint64_t off : offs) {
      if (off == schema::kNull) {
        if (!counted<F, I>) return up.violation(param_label(I) + ": a NULL inside a NULL-terminated string array");
        h.s.emplace_back();
        continue;
      }
      auto str = WARD_TRY(up.string(off));
      h.s.emplace_back(std::move(str));
    }
    h.null = false;
    return {};
  }
  template <class F, std::size_t I, class Args>
  static held<F, I> capture(const Args& args) {
    held<F, I> h;
    const auto v = std::get<I>(args);
    std::uint64_t n = 0;
    if (!v || !host_count<F, I>(args, n)) return h;
    for (std::uint64_t k = 0; k < n; ++k) h.s.push_back(v[k] ? std::optional<std::string>(v[k]) : std::nullopt);
    h.null = false;
    return h;
  }
  template <class F, std::size_t I>
  static param_type<F, I> arg(held<F, I>& h) {
    if (h.null) return nullptr;
    h.ptrs.clear();
    for (auto& e : h.s) h.ptrs.push_back(e ? e->data() : nullptr);
    h.ptrs.push_back(nullptr);
    return const_cast<param_type<F, I>>(h.ptrs.data());
  }
};

template <class F, std::size_t I>
using codec_of = Codec<param_kind<F, I>()>;

// The schema description of parameter I of function F.
template <class F, std::size_t I>
consteval schema::Param param_desc() {
  return codec_of<F, I>::template describe<F, I>();
}

// ---- result kinds -------------------------------------------------------------------------------
enum class ResultKind : std::uint8_t {
  none,    // void
  scalar,  // integer, floating point, enum, bool
  handle,  // ward::returns_handle<T>: checked like a handle parameter
  record,  // trivially copyable struct by value
  string,  // const char * with ward::returns_string, copied out
  count_
};

template <class F>
consteval ResultKind result_kind() {
  using R = typename F::ret;
  if constexpr (std::is_void_v<R>) return ResultKind::none;
  else if constexpr (std::is_pointer_v<R>) return ResultKind::string;
  else if constexpr (F::returned_handle.k == Ann::K::returns_handle) return ResultKind::handle;
  else if constexpr (is_scalar_arg<R>) return ResultKind::scalar;
  else return ResultKind::record;
}

// A value the extension returned (or left in out data) that no host object may hold.
inline std::unexpected<Error> refused(Call& c, const std::string& what) {
  return std::unexpected(c.decorate(fail(Errc::bad_data, what + std::string(kOutOfRange)).error()));
}

// One row per result kind: host<F> (what a typed call returns), describe, decode (the result
// the extension sent, on the host stub's side) and encode (a host service's result, on the
// dispatcher's side).
template <ResultKind K>
struct ResultCodec;

template <>
struct ResultCodec<ResultKind::none> {
  template <class F>
  using host = void;
  template <class F>
  static consteval schema::Param describe() {
    return simple_param(schema::Kind::void_, 0);
  }
  template <class F>
  static Result<void> decode(Call&, const schema::Slot&) {
    return {};
  }
};

template <>
struct ResultCodec<ResultKind::scalar> {
  template <class F>
  using host = Tainted<typename F::ret>;
  template <class F>
  static consteval schema::Param describe() {
    return simple_param(scalar_kind<typename F::ret>(), sizeof(typename F::ret));
  }
  template <class F>
  static Result<host<F>> decode(Call& c, const schema::Slot& r) {
    typename F::ret v;
    if (!from_bits(r.a, v)) return refused(c, "result");
    return host<F>(v);
  }
  template <class F>
  static Result<schema::Slot> encode(Upcall&, const typename F::ret& r) {
    return schema::Slot{to_bits(r), 0};
  }
};

template <>
struct ResultCodec<ResultKind::handle> : ResultCodec<ResultKind::scalar> {
  template <class F>
  static Result<host<F>> decode(Call& c, const schema::Slot& r) {
    WARD_TRY(c.check_handle(r.a, F::returned_handle.type, F::returned_handle.rights, true));
    return ResultCodec<ResultKind::scalar>::decode<F>(c, r);
  }
};

template <>
struct ResultCodec<ResultKind::record> {
  template <class F>
  using host = Tainted<typename F::ret>;
  template <class F>
  static consteval schema::Param describe() {
    return record_param<typename F::ret>();
  }
  template <class F>
  static Result<host<F>> decode(Call& c, const schema::Slot& r) {
    using R = typename F::ret;
    auto p = WARD_TRY(c.returned_range(r.a, sizeof(R)));
    R v;
    std::memcpy(&v, p, sizeof(R));
    if (!sanitize(v)) return refused(c, "result");
    return host<F>(v);
  }
  template <class F>
  static Result<schema::Slot> encode(Upcall& up, const typename F::ret& r) {
    using R = typename F::ret;
    auto off = WARD_TRY(up.alloc(sizeof(R)));
    auto p = WARD_TRY(up.writable(off, sizeof(R)));
    std::memcpy(p, &r, sizeof(R));
    return schema::Slot{off, sizeof(R)};
  }
};

template <>
struct ResultCodec<ResultKind::string> {
  template <class F>
  using host = Tainted<std::optional<std::string>>;
  template <class F>
  static consteval schema::Param describe() {
    return simple_param(schema::Kind::cstring, 1);
  }
  // The slot says where the string lies and how long the extension claims it is; the bytes are
  // copied, then checked in the copy (the extension may still be writing them).
  template <class F>
  static Result<host<F>> decode(Call& c, const schema::Slot& r) {
    if (r.a == schema::kNull) return host<F>(std::nullopt);
    if (r.b >= (1ull << 40)) return std::unexpected(c.violation("returned a string longer than any arena"));
    auto p = WARD_TRY(c.returned_range(r.a, r.b + 1));
    std::string s(reinterpret_cast<const char*>(p), r.b + 1);
    const auto nul = s.find('\0');
    if (nul == std::string::npos) return std::unexpected(c.violation("returned a string without its terminator"));
    s.resize(nul);
    return host<F>(std::move(s));
  }
  template <class F>
  static Result<schema::Slot> encode(Upcall& up, const char* r) {
    if (!r) return schema::Slot{schema::kNull, 0};
    const std::size_t len = std::strlen(r);
    auto off = WARD_TRY(up.alloc(len + 1, 1));
    auto p = WARD_TRY(up.writable(off, len + 1));
    std::memcpy(p, r, len + 1);
    return schema::Slot{off, len};
  }
};

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
// (iface/callback.h), cast back to the callback's type.
template <class F>
auto callback_fn(held_args<F>& held) {
  using P = std::remove_cvref_t<decltype(std::declval<typename F::api&>().*F::member)>;
  return reinterpret_cast<P>(std::get<user_data_index<F>()>(held).fn);
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
