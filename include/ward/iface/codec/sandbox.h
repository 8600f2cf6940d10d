// Codec rows for ward::shared: a pointer into a live sandbox allocation (iface/sandbox.h), passed
// in place as its offset, nothing copied. Checked: the whole declared size lies inside one live
// allocation of this domain; calls into the extension only.
#pragma once

#ifndef WARD_DETAIL_CODEC_ROWS
#error "ward/iface/codec/sandbox.h holds rows of the codec table: include ward/iface/codec.h"
#endif

namespace ward::detail {

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

}  // namespace ward::detail
