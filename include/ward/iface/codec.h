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

inline bool mul_overflows(std::uint64_t a, std::uint64_t b, std::uint64_t& out) { return __builtin_mul_overflow(a, b, &out); }

inline constexpr std::string_view kOutOfRange = ": an enum value outside its declared range (ward::enum_range)";

inline std::string param_label(std::size_t i) { return "parameter " + std::to_string(i); }

// A C string of either character type (interface.h, is_string_char_v) as the bytes it is.
inline const char* as_chars(const char* s) { return s; }
inline const char* as_chars(const unsigned char* s) { return reinterpret_cast<const char*>(s); }
// And back: the host's copy as the C parameter's type (const or not: the copy is the host's own).
template <class P>
P as_string(char* s) {
  return reinterpret_cast<P>(s);
}

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

// Out data the extension filled only in part (ward::filled): sets each such buffer's `bytes` to
// what was filled, before anything is checked or copied back. A count parameter is copied out
// of the frame once, into `copies` (the copy its host object then receives, so the host keeps
// exactly the value checked here); more than the capacity is bad_data. A result that is
// negative or above the capacity is the library's error code: false, and no out data is copied.
inline Result<bool> settle_filled(Call& c, const schema::Slot& r, std::span<CopyBack> back,
                                  std::span<std::vector<std::byte>> copies) {
  using From = CopyBack::Filled::From;
  for (CopyBack& b : back) {
    if (!b.host || b.filled.from != From::result) continue;
    std::uint64_t n = 0;
    if (!read_count(&r.a, b.filled.width, b.filled.is_signed, n) || n > b.bytes / b.filled.elem) return false;
    b.bytes = n * b.filled.elem;
  }
  for (std::size_t i = 0; i < back.size(); ++i) {
    CopyBack& b = back[i];
    if (!b.host || b.filled.from != From::param) continue;
    const CopyBack& len = back[b.filled.index];
    std::vector<std::byte>& copy = copies[b.filled.index];
    if (len.host && len.bytes >= b.filled.width && copy.empty()) copy.assign(c.at(len.off), c.at(len.off) + len.bytes);
    std::uint64_t n = 0;
    const bool ok = copy.size() >= b.filled.width && read_count(copy.data(), b.filled.width, b.filled.is_signed, n);
    if (!ok || n > b.bytes / b.filled.elem)
      return std::unexpected(c.decorate(
          fail(Errc::bad_data, param_label(i) + ": the extension reports " +
                                   (ok ? std::to_string(n) + " elements filled, more than the " +
                                             std::to_string(b.bytes / b.filled.elem) + " it was given"
                                       : std::string("a negative filled count")) +
                                   " (" + param_label(b.filled.index) + ")")
              .error()));
    b.bytes = n * b.filled.elem;
  }
  return true;
}

template <class E>
Result<void> check_elements(Call& c, std::size_t param, void* copy, std::uint64_t bytes) {
  if (!sanitize_all(static_cast<E*>(copy), bytes / sizeof(E))) return refused(c, param_label(param));
  return {};
}
template <class E>
constexpr CopyBack::Check checker_for() {
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
  // Callbacks across a retry (iface/callback_journal.h): a fresh instance holds other handles, so
  // only null or not compares.
  template <class F, std::size_t I, class Digest, class H>
  static void digest(Digest& d, const H& h) {
    d.u64(static_cast<std::uint64_t>(h) != 0);
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
    const char* v = as_chars(std::get<I>(args));
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
    const char* v = as_chars(std::get<I>(args));
    return v ? held<F, I>(v) : std::nullopt;
  }
  template <class F, std::size_t I>
  static param_type<F, I> arg(held<F, I>& h) {
    return h ? as_string<param_type<F, I>>(h->data()) : nullptr;
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
    std::optional<SandboxHeap::Found> sandbox;  // captured sandbox memory: by offset, not bytes
  };
  template <class F, std::size_t I>
  using held = Owned<F, I>;
  template <class F, std::size_t I>
  static constexpr Ann ann = ann_for(F::anns, I).ann;
  template <class F, std::size_t I>
  static constexpr schema::Dir dir = ann<F, I>.k == Ann::K::in    ? schema::Dir::in
                                     : ann<F, I>.k == Ann::K::out ? schema::Dir::out
                                                                  : schema::Dir::inout;
  // The size as the child computes it for upcalls: a constant times at most one parameter.
  // Sizes only the host computes (calls into the extension) leave both unset.
  template <class F, std::size_t I>
  static constexpr bool child_computable = ann<F, I>.count.child_computable() && ann<F, I>.count.constant <= UINT32_MAX;
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    schema::Param p = simple_param(schema::Kind::buffer, sizeof(element<F, I>), nullable_at<F, I>);
    p.dir = dir<F, I>;
    constexpr Size size = ann<F, I>.count;
    if constexpr (child_computable<F, I>) {
      p.count_arg = size.n ? size.factors[0].index : 0xff;
      p.count_const = static_cast<std::uint32_t>(size.constant);
    }
    return p;
  }
  template <class F, std::size_t I>
  static constexpr CopyBack::Filled filled = [] {
    using From = CopyBack::Filled::From;
    constexpr Size s = ann<F, I>.produced;
    constexpr auto elem = static_cast<std::uint32_t>(sizeof(element<F, I>));
    if constexpr (!s.given) {
      return CopyBack::Filled{};
    } else if constexpr (s.factors[0].from == Size::From::result) {
      using R = typename F::ret;
      return CopyBack::Filled{From::result, 0, sizeof(R), std::is_signed_v<R>, elem};
    } else {
      using N = pointee_t<param_type<F, s.factors[0].index>>;
      return CopyBack::Filled{From::param, s.factors[0].index, sizeof(N), std::is_signed_v<N>, elem};
    }
  }();
  // Elements the declared size names (one without a size).
  template <class F, std::size_t I, class Values>
  static SizeError count(const Values& values, std::uint64_t& n) {
    return evaluate<ann<F, I>.count>(values, n);
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack& back) {
    using P = param_type<F, I>;
    auto misuse = [&](std::string_view what) {
      return std::unexpected(c.decorate(fail(Errc::misuse, param_label(I) + ": " + std::string(what)).error()));
    };
    std::uint64_t n = 1, bytes = 0;
    if (auto e = count<F, I>(args, n); e != SizeError::none) return misuse(size_error_text(e));
    if (mul_overflows(n, sizeof(element<F, I>), bytes)) return misuse("element count overflows");
    if constexpr (filled<F, I>.from == CopyBack::Filled::From::param) {
      if (!std::get<filled<F, I>.index>(args)) return misuse("null pointer to its filled count (ward::deref)");
    }
    const P v = std::get<I>(args);
    if (!v) {
      if (!nullable_at<F, I> && bytes != 0)
        return misuse("null buffer with a non-zero size (declare ward::nullable to allow it)");
      s = {schema::kNull, bytes};
      return {};
    }
    // Sandbox memory is the extension's already: passed in place, nothing copied in or back.
    if (auto at = WARD_TRY(c.in_sandbox(static_cast<const void*>(v), bytes))) {
      s = {*at, bytes};
      return {};
    }
    auto off = WARD_TRY(c.alloc(bytes));
    if constexpr (dir<F, I> == schema::Dir::out) std::memset(c.at(off), 0, bytes);
    else std::memcpy(c.at(off), static_cast<const void*>(v), bytes);
    if constexpr (dir<F, I> != schema::Dir::in)
      back = {static_cast<void*>(v), off, bytes, checker_for<element<F, I>>(), filled<F, I>};
    s = {off, bytes};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall& up, Held& held, CopyBack& back) {
    static_assert(child_computable<F, I> && !ann<F, I>.produced.given,
                  "ward: a buffer of a host service or callback (called by the extension) can only be sized by "
                  "ward::arg(j), a constant (ward::elems) or their product, without .filled(): the extension's side "
                  "computes that size itself");
    auto s = WARD_TRY(up.param(I));
    std::uint64_t n = 1, bytes = 0;
    if (auto e = count<F, I>(held, n); e != SizeError::none)
      return up.violation(std::string(size_error_text(e)) + " for " + param_label(I));
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
  // In data by value; out data as scratch space of the same size. Runs after a call that
  // succeeded, so the size evaluates as it did then (a count the extension may change is a
  // checked filled count: interface.h).
  template <class F, std::size_t I, class Args>
  static held<F, I> capture(const Args& args) {
    held<F, I> h;
    const auto v = std::get<I>(args);
    if (!v) return h;
    std::uint64_t n = 1;
    (void)count<F, I>(args, n);
    // Sandbox memory is named by its offset: a replay after a restart finds it in the new domain.
    if ((h.sandbox = SandboxHeap::locate_any(static_cast<const void*>(v), n * sizeof(element<F, I>)))) {
      h.null = false;
      return h;
    }
    h.v.resize(n ? n : 1);
    h.null = false;
    if constexpr (dir<F, I> != schema::Dir::out) std::memcpy(h.v.data(), static_cast<const void*>(v), n * sizeof(element<F, I>));
    return h;
  }
  template <class F, std::size_t I>
  static param_type<F, I> arg(held<F, I>& h) {
    if (h.sandbox) return reinterpret_cast<param_type<F, I>>(h.sandbox->heap->host_at(h.sandbox->off));
    return h.null ? nullptr : reinterpret_cast<param_type<F, I>>(h.v.data());
  }
};

// ward::shared: a pointer into a live sandbox allocation with room for its elements, passed in
// place (the child turns the offset into its own address, as for buffers). Calls into the
// extension only: the host has no business taking the extension's memory as its own argument.
template <>
struct Codec<ParamKind::shared> {
  static constexpr bool late = true;
  template <class F, std::size_t I>
  using held = std::optional<SandboxHeap::Found>;  // nullopt: a null pointer
  template <class F, std::size_t I>
  using element = Codec<ParamKind::buffer>::element<F, I>;
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    schema::Param p = simple_param(schema::Kind::buffer, sizeof(element<F, I>), nullable_at<F, I>);
    p.dir = schema::Dir::inout;  // the child only turns the offset into its own address
    return p;
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack&) {
    auto misuse = [&](std::string what) {
      return std::unexpected(c.decorate(fail(Errc::misuse, param_label(I) + ": " + what).error()));
    };
    std::uint64_t n = 1, bytes = 0;
    if (auto e = Codec<ParamKind::buffer>::count<F, I>(args, n); e != SizeError::none)
      return misuse(std::string(size_error_text(e)));
    if (mul_overflows(n, sizeof(element<F, I>), bytes)) return misuse("element count overflows");
    const void* v = static_cast<const void*>(std::get<I>(args));
    if (!v) {
      if (!nullable_at<F, I>) return misuse("null pointer for ward::shared (declare ward::nullable to allow it)");
      s = {schema::kNull, bytes};
      return {};
    }
    auto at = WARD_TRY(c.in_sandbox(v, bytes));
    if (!at) return misuse("ward::shared needs a pointer into sandbox memory (Instance::alloc)");
    s = {*at, bytes};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall&, Held&, CopyBack&) {
    static_assert(sizeof(F) == 0, "ward: ward::shared is for calls into the extension, not host services");
    return {};
  }
  template <class F, std::size_t I, class Args>
  static held<F, I> capture(const Args& args) {
    std::uint64_t n = 1;
    (void)Codec<ParamKind::buffer>::count<F, I>(args, n);
    return SandboxHeap::locate_any(static_cast<const void*>(std::get<I>(args)), n * sizeof(element<F, I>));
  }
  template <class F, std::size_t I>
  static param_type<F, I> arg(held<F, I>& h) {
    return h ? reinterpret_cast<param_type<F, I>>(h->heap->host_at(h->off)) : nullptr;
  }
};

// What service tables and handler structs share: a host struct of functions, named by the id of
// its table, kept (for replay) and passed on as the host's own pointer, which must outlive the
// domain's use of it anyway.
struct HostStruct : ByValue {
  static constexpr bool late = true;
  template <class F, std::size_t I>
  static constexpr std::uint32_t table = service_id<typename F::api, pointee_t<param_type<F, I>>>();
};

// A host service table: the host registers its struct with the domain; the extension receives
// stubs that cross back. Never passed from the extension into the host (null there).
template <>
struct Codec<ParamKind::services> : HostStruct {
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
};

// [deep] The descriptor a function is called through (object.h): its extension address, which
// the host holds for the Object, replaces whatever the host passed.
template <>
struct Codec<ParamKind::self> : ByValue {
  static constexpr bool late = false;
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    return simple_param(schema::Kind::u64, sizeof(void*));  // libffi passes it like a pointer
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args&, CopyBack&) {
    if (!c.object())
      return std::unexpected(
          c.decorate(fail(Errc::misuse, param_label(I) + ": ward::self in a call not made through a ward::Object").error()));
    s = {c.object(), 0};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall& up, Held&, CopyBack&) {
    return up.violation("a host service cannot take ward::self");
  }
};

// [deep] An out parameter of a described type: the frame holds a zeroed T the extension fills;
// the child serializes what it points to after the call (into the parameter's slot) and the
// host decodes it into the Deep<T> whose out() the host passed.
template <>
struct Codec<ParamKind::deep_out> : ByValue {
  static constexpr bool late = true;
  template <class F, std::size_t I>
  using type = pointee_t<param_type<F, I>>;
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    schema::Param p = simple_param(schema::Kind::deep, sizeof(type<F, I>), nullable_at<F, I>);
    p.dir = schema::Dir::out;  // p.table: the struct's id, set when the Spec is built (stubs.h)
    return p;
  }
  template <class T>
  static Result<DeepValue> decode_out(Call& c, std::uint64_t slot_off) {
    schema::Slot s;
    std::memcpy(&s, c.at(slot_off), sizeof s);  // the child rewrote it: one copy
    return decode_deep<T>(c, s, c.struct_labels());
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack& back) {
    using T = type<F, I>;
    auto misuse = [&](std::string what) {
      return std::unexpected(c.decorate(fail(Errc::misuse, param_label(I) + ": " + what).error()));
    };
    const auto v = std::get<I>(args);
    if (!v) {
      if (!nullable_at<F, I>) return misuse("null pointer (declare ward::nullable to allow it)");
      s = {schema::kNull, sizeof(T)};
      return {};
    }
    DeepValue* target = DeepTargets::get().find(v);
    if (!target) return misuse("an out parameter of a WARD_STRUCT type takes `deep.out()` of a ward::Deep<T>");
    auto off = WARD_TRY(c.alloc(sizeof(T)));
    std::memset(c.at(off), 0, sizeof(T));
    s = {off, sizeof(T)};
    back.deep = target;
    back.decode_deep = &decode_out<T>;
    back.off = static_cast<std::uint64_t>(reinterpret_cast<std::byte*>(&s) - c.at(0));
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall& up, Held&, CopyBack&) {
    return up.violation("a host service cannot take a WARD_STRUCT out parameter");
  }
};

// ---- opaque pointers (iface/opaque.h, backend/opaque_table.h) ---------------------------------
// Only the extension's value crosses, as a 64-bit integer (schema::Kind::u64: the child passes it
// like a pointer); the host side holds the token the domain's OpaqueTable keeps for it.
template <class P>
inline constexpr HandleType opaque_type = handle_type<pointee_t<P>>();

// An error about parameter i, kept as the table gave it (misuse for a bad token, limit).
inline std::unexpected<Error> opaque_error(Call& c, std::size_t i, const Error& e) {
  return std::unexpected(c.decorate(fail(e.kind, param_label(i) + ": " + e.detail).error()));
}

// The extension's pointer the host passes back: its token is checked and replaced by the value.
// From the extension into a host service: the value becomes a token the service may pass back.
template <>
struct Codec<ParamKind::opaque> : ByValue {
  static constexpr bool late = false;
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    return simple_param(schema::Kind::u64, sizeof(void*));
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack& back) {
    const auto token = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(std::get<I>(args)));
    if (token == 0) {
      if (!nullable_at<F, I>)
        return opaque_error(c, I, fail(Errc::misuse, "null opaque pointer (declare ward::nullable to allow it)").error());
      s = {0, 0};
      return {};
    }
    auto v = c.opaques().value_of(token, opaque_type<param_type<F, I>>);
    if (!v) return opaque_error(c, I, v.error());
    s = {*v, 0};
    if constexpr (ann_for(F::anns, I).releases) back.release = token;
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall& up, Held& held, CopyBack&) {
    auto s = WARD_TRY(up.param(I));
    if (s.a == 0 && !nullable_at<F, I>) return up.violation("null opaque pointer for " + param_label(I));
    auto token = up.opaques().token_for(s.a, opaque_type<param_type<F, I>>);
    if (!token) return up.violation(param_label(I) + ": " + token.error().detail);
    std::get<I>(held) = reinterpret_cast<param_type<F, I>>(static_cast<std::uintptr_t>(*token));
    return {};
  }
};

// The out-data check of an out_opaque parameter: what the extension wrote becomes its token.
template <class P>
Result<void> opaque_out(Call& c, std::size_t param, void* copy, std::uint64_t) {
  std::uint64_t value;
  std::memcpy(&value, copy, sizeof value);
  auto token = c.opaques().token_for(value, opaque_type<std::remove_pointer_t<P>>);
  if (!token) return opaque_error(c, param, token.error());
  std::memcpy(copy, &*token, sizeof value);
  return {};
}

// What out_opaque and out_text share: a T ** the extension fills through a zeroed cell of `Cell`
// bytes in the frame, which the row's check turns into the host's T * (only if the call
// succeeds, like any out data); for replay, a slot the replayed call fills. Calls into the
// extension only.
template <std::size_t Cell>
struct OutPointer {
  static constexpr bool late = false;
  template <class F, std::size_t I>
  struct Slot {
    std::remove_pointer_t<param_type<F, I>> value = nullptr;
    bool null = true;
  };
  template <class F, std::size_t I>
  using held = Slot<F, I>;
  template <class F, std::size_t I, class Args>
  static Result<void> encode_cell(Call& c, schema::Slot& s, const Args& args, CopyBack& back, CopyBack::Check check,
                                  std::string_view what) {
    const auto v = std::get<I>(args);
    if (!v) {
      if (!nullable_at<F, I>)
        return opaque_error(
            c, I, fail(Errc::misuse, "null " + std::string(what) + " pointer (declare ward::nullable to allow it)").error());
      s = {schema::kNull, Cell};
      return {};
    }
    auto off = WARD_TRY(c.alloc(Cell, alignof(void*)));
    std::memset(c.at(off), 0, Cell);
    back = {static_cast<void*>(v), off, Cell, check};
    back.delivered = sizeof(void*);
    s = {off, Cell};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall&, Held&, CopyBack&) {
    static_assert(sizeof(F) == 0, "ward: a host service cannot take a ward::out_opaque or ward::out_text parameter");
    return {};
  }
  template <class F, std::size_t I, class Args>
  static held<F, I> capture(const Args& args) {
    return {nullptr, std::get<I>(args) == nullptr};
  }
  template <class F, std::size_t I>
  static param_type<F, I> arg(held<F, I>& h) {
    return h.null ? nullptr : &h.value;
  }
};

// A T ** the extension fills (int open(const char *, db **)): an 8-byte out buffer in the frame;
// the host's T * receives the token.
template <>
struct Codec<ParamKind::out_opaque> : OutPointer<sizeof(void*)> {
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    schema::Param p = simple_param(schema::Kind::buffer, sizeof(void*), nullable_at<F, I>);
    p.dir = schema::Dir::out;
    return p;
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack& back) {
    return encode_cell<F, I>(c, s, args, back, &opaque_out<param_type<F, I>>, "out_opaque");
  }
};

// ---- [sqlite] strings the library allocated (iface/opaque.h, "Texts") -------------------------------------
// The out-data check of an out_text cell (schema::TextCell, copied out of the frame once): the
// string the child copied into the frame is checked and kept by the domain, and the cell's first
// 8 bytes become the host's char *, the copy's address. A cell that does not describe a
// terminated string inside what the call returned is a violation, as for ward::returns_string.
inline Result<void> text_out(Call& c, std::size_t param, void* copy, std::uint64_t) {
  schema::TextCell cell;
  std::memcpy(&cell, copy, sizeof cell);
  const char* host = nullptr;
  if (cell.ptr != 0) {
    if (cell.len >= (1ull << 40)) return std::unexpected(c.violation(param_label(param) + ": a string longer than any arena"));
    auto p = WARD_TRY(c.returned_range(cell.off, cell.len + 1));
    std::string s(reinterpret_cast<const char*>(p), cell.len + 1);
    const auto nul = s.find('\0');
    if (nul == std::string::npos) return std::unexpected(c.violation(param_label(param) + ": a string without its terminator"));
    s.resize(nul);
    auto kept = c.opaques().text_for(cell.ptr, std::move(s));
    if (!kept) return opaque_error(c, param, kept.error());
    host = *kept;
  }
  std::memcpy(copy, &host, sizeof host);
  return {};
}

// char **: a cell in the frame the library's function stores its pointer in; the child copies
// the string out after the call.
template <>
struct Codec<ParamKind::out_text> : OutPointer<sizeof(schema::TextCell)> {
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    return simple_param(schema::Kind::out_text, sizeof(schema::TextCell), nullable_at<F, I>);
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack& back) {
    return encode_cell<F, I>(c, s, args, back, &text_out, "out_text");
  }
};

// A library's constant function pointer (SQLITE_TRANSIENT): the bits cross as a u64 (libffi
// passes them like a pointer); anything that could be code is refused before sending.
template <>
struct Codec<ParamKind::sentinel> : ByValue {
  static constexpr bool late = false;
  static constexpr std::uint64_t kNear = 4095;  // |value| up to this: never a mapped address
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    return simple_param(schema::Kind::u64, sizeof(void*));
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack&) {
    const auto bits = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(std::get<I>(args)));
    if (bits > kNear && bits < ~kNear)
      return std::unexpected(c.decorate(fail(Errc::misuse, param_label(I) + ": ward::sentinel takes only a constant the "
                                                                         "library defines (such as SQLITE_TRANSIENT), "
                                                                         "not a function")
                                            .error()));
    s = {bits, 0};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall&, Held&, CopyBack&) {
    static_assert(sizeof(F) == 0, "ward: a host service cannot take a ward::sentinel parameter");
    return {};
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

// A struct of callbacks (iface/handlers.h): the extension receives a copy in the frame (data
// fields as the host set them, a 1 for each declared function the host set), which the child
// turns into its own struct by putting each such field's stub in its place (schema::Kind::handlers).
// The host's struct is registered by its user-data row.
template <>
struct Codec<ParamKind::handlers> : HostStruct {
  template <class F, std::size_t I>
  static consteval schema::Param describe() {
    schema::Param p = simple_param(schema::Kind::handlers, sizeof(pointee_t<param_type<F, I>>), nullable_at<F, I>);
    p.table = table<F, I>;
    return p;
  }
  template <class F, std::size_t I, class Args>
  static Result<void> encode(Call& c, schema::Slot& s, const Args& args, CopyBack&) {
    using H = pointee_t<param_type<F, I>>;
    const H* v = std::get<I>(args);
    if (!v) {
      if (!nullable_at<F, I>)
        return std::unexpected(
            c.decorate(fail(Errc::misuse, param_label(I) + ": null handler struct (declare ward::nullable to allow it)").error()));
      s = {schema::kNull, 0};
      return {};
    }
    auto off = WARD_TRY(c.alloc(sizeof(H), alignof(H) < 16 ? 16 : alignof(H)));
    extension_copy(*v, reinterpret_cast<unsigned char*>(c.at(off)));
    s = {off, table<F, I>};
    return {};
  }
  template <class F, std::size_t I, class Held>
  static Result<void> decode(Upcall&, Held&, CopyBack&) {
    static_assert(dependent_false<F>, "ward: host services and callbacks cannot take handler structs themselves");
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
    void* const user = const_cast<void*>(static_cast<const void*>(std::get<I>(args)));
    CallbackTarget t;
    if constexpr (param_kind<F, cb>() == ParamKind::handlers)
      t = {Codec<ParamKind::handlers>::table<F, cb>, nullptr, user, static_cast<const void*>(fn)};
    else
      t = {Codec<ParamKind::callback>::table<F, cb>, reinterpret_cast<void (*)()>(fn), user};
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
        const std::size_t len = std::strlen(as_chars(v[k]));
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
    for (std::uint64_t k = 0; k < n; ++k) h.s.push_back(v[k] ? std::optional<std::string>(as_chars(v[k])) : std::nullopt);
    h.null = false;
    return h;
  }
  template <class F, std::size_t I>
  static param_type<F, I> arg(held<F, I>& h) {
    if (h.null) return nullptr;
    h.ptrs.clear();
    for (auto& e : h.s) h.ptrs.push_back(e ? e->data() : nullptr);
    h.ptrs.push_back(nullptr);
    return static_cast<param_type<F, I>>(static_cast<void*>(h.ptrs.data()));  // char ** as the C type's
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
  static Result<schema::Slot> encode(Upcall& up, typename F::ret ret) {
    const char* r = reinterpret_cast<const char*>(ret);  // const unsigned char * too
    if (!r) return schema::Slot{schema::kNull, 0};
    const std::size_t len = std::strlen(r);
    auto off = WARD_TRY(up.alloc(len + 1, 1));
    auto p = WARD_TRY(up.writable(off, len + 1));
    std::memcpy(p, r, len + 1);
    return schema::Slot{off, len};
  }
};

// [deep] A descriptor: decoded into a Deep<T>; when T has a WARD_INTERFACE of its own (an object
// table in this domain), the address is recorded so ward::Object<T> may call through it.
template <>
struct ResultCodec<ResultKind::deep> {
  template <class F>
  using type = pointee_t<typename F::ret>;
  template <class F>
  using host = Tainted<Deep<type<F>>>;
  template <class F>
  static consteval schema::Param describe() {
    return simple_param(schema::Kind::deep, sizeof(type<F>));  // table: the struct's id (stubs.h)
  }
  template <class F>
  static Result<host<F>> decode(Call& c, const schema::Slot& r) {
    auto v = WARD_TRY(decode_deep<type<F>>(c, r, c.struct_labels()));
    if (v.root) {
      if (const std::uint32_t table = c.object_table(type_key<type<F>>())) {
        WARD_TRY(c.note_object(table, v.address));
        v.table = table;
        v.domain = &c.domain();
      }
    }
    return host<F>(Deep<type<F>>(std::move(v)));
  }
};

// Not Tainted: the token is the host's own; the extension's value, whatever it is, stays behind it.
// A null pointer is a null Opaque, not an error (opaque.h).
template <>
struct ResultCodec<ResultKind::opaque> {
  template <class F>
  using host = Opaque<pointee_t<typename F::ret>>;
  template <class F>
  static consteval schema::Param describe() {
    return simple_param(schema::Kind::u64, sizeof(void*));
  }
  template <class F>
  static Result<host<F>> decode(Call& c, const schema::Slot& r) {
    auto token = c.opaques().token_for(r.a, opaque_type<typename F::ret>);
    if (!token) return std::unexpected(c.decorate(fail(token.error().kind, "result: " + token.error().detail).error()));
    return host<F>(reinterpret_cast<pointee_t<typename F::ret>*>(static_cast<std::uintptr_t>(*token)));
  }
  template <class F>
  static Result<schema::Slot> encode(Upcall&, typename F::ret) {
    static_assert(sizeof(F) == 0, "ward: a host service cannot return a ward::returns_opaque pointer");
    return schema::Slot{};
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
