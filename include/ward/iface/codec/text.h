// Codec rows for C strings: const char * (cstring), arrays of them (strings), a string the library
// allocated (out_text) and a returned string (returns_string). Each string is copied once; the copy
// must hold its terminator inside what the call returned, and a NULL appears only where declared.
#pragma once

#ifndef WARD_DETAIL_CODEC_ROWS
#error "ward/iface/codec/text.h holds rows of the codec table: include ward/iface/codec.h"
#endif

namespace ward::detail {

// A C string of either character type (interface.h, is_string_char_v) as the bytes it is.
inline const char* as_chars(const char* s) { return s; }
inline const char* as_chars(const unsigned char* s) { return reinterpret_cast<const char*>(s); }
// And back: the host's copy as the C parameter's type (const or not: the copy is the host's own).
template <class P>
P as_string(char* s) {
  return reinterpret_cast<P>(s);
}

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

}  // namespace ward::detail
