// Codec rows for WARD_STRUCT descriptors (iface/deep.h, object.h): a returned descriptor or an out
// parameter is deep-copied into a host ward::Deep<T> (every pointer checked by decode_deep), and
// ward::self passes the descriptor a ward::Object calls through. Calls into the extension only.
#pragma once

#ifndef WARD_DETAIL_CODEC_ROWS
#error "ward/iface/codec/deep.h holds rows of the codec table: include ward/iface/codec.h"
#endif

namespace ward::detail {

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

}  // namespace ward::detail
