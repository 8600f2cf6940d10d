// Codec rows for pointers the host never follows: the extension's objects (ward::opaque,
// out_opaque, returns_opaque: iface/opaque.h) cross as their 64-bit value and reach the host as a
// typed token the domain checks both ways; a library's constant function pointer (ward::sentinel)
// crosses as bits that must not be an address.
#pragma once

#ifndef WARD_DETAIL_CODEC_ROWS
#error "ward/iface/codec/opaque.h holds rows of the codec table: include ward/iface/codec.h"
#endif

namespace ward::detail {

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

}  // namespace ward::detail
