// Codec rows for values passed by value: scalars (integers, floating point, enums, bool), handles
// and trivially copyable records, as parameters and as results. The bits cross in the slot (a record
// through the frame); what the extension sent is copied once and sanitized there (bools normalised,
// enums in range: values.h), and a handle is checked against the host's table in both directions.
#pragma once

#ifndef WARD_DETAIL_CODEC_ROWS
#error "ward/iface/codec/scalar.h holds rows of the codec table: include ward/iface/codec.h"
#endif

namespace ward::detail {

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

}  // namespace ward::detail
