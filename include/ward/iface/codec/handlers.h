// Codec rows for host structs of functions: service tables (ward::services) and handler structs
// (WARD_HANDLERS, iface/handlers.h). The extension receives stubs by table id, never the host's
// function pointers; a handler struct's data fields cross as the host set them.
#pragma once

#ifndef WARD_DETAIL_CODEC_ROWS
#error "ward/iface/codec/handlers.h holds rows of the codec table: include ward/iface/codec.h"
#endif

namespace ward::detail {

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

}  // namespace ward::detail
