// Codec rows for pointers to elements: ward::in / out / inout buffers, sized by size.h. The host's
// bytes cross through the frame (in place when they are sandbox memory); out data comes back only
// after the call, from one copy checked element by element and, with .filled(), cut to the
// extension's checked count (settle_filled).
#pragma once

#ifndef WARD_DETAIL_CODEC_ROWS
#error "ward/iface/codec/buffer.h holds rows of the codec table: include ward/iface/codec.h"
#endif

namespace ward::detail {

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

}  // namespace ward::detail
