// The compile-time checks of an interface declaration (interface.h), one per parameter
// (CheckParam, with CheckSize for a buffer's size) and one per function result (CheckRet), so the
// error names the function and the index. Each is a static_assert with a message that says what
// to write instead; nothing here exists at run time.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ward/iface/interface.h"

namespace ward::detail {

// A type only a library knows (struct sqlite3 declared, never defined): a pointer to it can only
// be an opaque pointer. void is not one (a void * buffer has a byte count), nor a function type.
template <class T>
concept incomplete_object = !std::is_void_v<T> && !std::is_function_v<T> && !requires { sizeof(T); };
// A pointer that must be declared opaque: T * or T ** with T incomplete.
template <class P>
inline constexpr bool needs_opaque = std::is_pointer_v<P> && (incomplete_object<pointee_t<P>> ||
                                                              (std::is_pointer_v<pointee_t<P>> &&
                                                               incomplete_object<pointee_t<pointee_t<P>>>));

// What a size factor (size.h) may read from each parameter of a function.
struct SizeSource {
  bool integer = false;  // an integer by value: ward::arg
  bool int_ptr = false;  // a pointer to integers: ward::deref
  bool pointer = false;
  const SizeTypeTag* record = nullptr;  // the struct it is or points to: ward::field
  Ann::K k = Ann::K::nullable;          // its direction annotation (nullable: none)
  bool one = false;                     // annotated without a count: one element
};

template <class F, std::size_t J>
consteval SizeSource size_source() {
  using P = std::tuple_element_t<J, typename F::args>;
  using E = pointee_t<P>;
  SizeSource s;
  s.integer = std::is_integral_v<P> && !std::is_same_v<P, bool>;
  s.pointer = std::is_pointer_v<P>;
  s.int_ptr = s.pointer && std::is_integral_v<E> && !std::is_same_v<E, bool>;
  if constexpr (std::is_pointer_v<P> && std::is_class_v<E>) s.record = size_type_of<E>();
  else if constexpr (std::is_class_v<P>) s.record = size_type_of<P>();
  constexpr ParamAnn pa = ann_for(F::anns, J);
  if (pa.count == 1) s.k = pa.ann.k;
  s.one = pa.count == 1 && !pa.ann.count.given;
  return s;
}

template <class F>
consteval std::array<SizeSource, F::arity> size_sources() {
  return []<std::size_t... J>(std::index_sequence<J...>) {
    return std::array<SizeSource, F::arity>{size_source<F, J>()...};
  }(std::make_index_sequence<F::arity>{});
}

// The size and the filled count of buffer parameter I: every factor names another parameter
// that can hold what it reads.
template <class F, std::size_t I>
struct CheckSize {
  using K = Ann::K;
  using From = Size::From;
  static constexpr Ann a = ann_for(F::anns, I).ann;
  static constexpr std::array<SizeSource, F::arity> src = size_sources<F>();
  template <class Ok>
  static consteval bool each(const Size& s, From from, Ok ok) {
    for (std::uint8_t k = 0; k < s.n; ++k) {
      const Size::Factor& f = s.factors[k];
      if (f.from != from) continue;
      if (f.index >= F::arity || f.index == I || !ok(f, src[f.index])) return false;
    }
    return true;
  }
  static_assert(each(a.count, From::arg, [](auto, const SizeSource& p) { return p.integer; }),
                "ward: the count index of a buffer annotation must name another parameter of integer type");
  // A count the extension can change (inout) is checked after the call only as the filled count:
  // otherwise the host's object would keep an unchecked size (and a replay would trust it).
  static constexpr bool fills_own_count(std::uint8_t j) {
    return a.produced.n == 1 && a.produced.factors[0].from == From::deref && a.produced.factors[0].index == j;
  }
  static_assert(each(a.count, From::deref,
                     [](const Size::Factor& f, const SizeSource& p) {
                       return p.int_ptr && p.one && (p.k == K::in || (p.k == K::inout && fills_own_count(f.index)));
                     }),
                "ward: ward::deref(j) must name another parameter that points to one integer, annotated ward::in(j), or "
                "ward::inout(j) with .filled(ward::deref(j))");
  static_assert(each(a.count, From::field,
                     [](const Size::Factor& f, const SizeSource& p) {
                       return f.of == p.record && (!p.pointer || p.k == K::in);
                     }),
                "ward: ward::field<&S::member>(j) must name another parameter that is an S by value or points to an S "
                "annotated ward::in(j)");
  static_assert(!a.count.has(From::result),
                "ward: ward::result counts what a call produced: use it in .filled(ward::result), not as a capacity");
  static constexpr Size fl = a.produced;
  static_assert(!fl.given || a.k == K::out || a.k == K::inout, "ward: .filled() is for out and inout buffers");
  static_assert(!fl.given || a.count.given, "ward: .filled() needs the buffer's capacity: ward::out(i, count).filled(...)");
  static_assert(!fl.given || (fl.n == 1 && fl.constant == 1 && !fl.has(From::arg) && !fl.has(From::field)),
                "ward: .filled() takes ward::deref(j) or ward::result");
  static_assert(each(fl, From::deref, [](auto, const SizeSource& p) { return p.int_ptr && p.one && (p.k == K::out || p.k == K::inout); }),
                "ward: .filled(ward::deref(j)) must name another parameter that points to one integer, annotated "
                "ward::out(j) or ward::inout(j)");
  static_assert(!fl.has(From::result) || (std::is_integral_v<typename F::ret> && !std::is_same_v<typename F::ret, bool>),
                "ward: .filled(ward::result) needs a function that returns an integer");
  static constexpr bool value = true;
};

// ---- compile-time checks, one per parameter so the error names the function and the index ----
template <class F, std::size_t I>
struct CheckParam {
  using P = std::tuple_element_t<I, typename F::args>;
  static constexpr ParamAnn pa = ann_for(F::anns, I);
  static constexpr bool is_ptr = std::is_pointer_v<P>;
  static_assert(pa.count <= 1, "ward: a parameter has more than one direction/kind annotation");
  static constexpr bool opaque_ann = pa.count == 1 && (pa.ann.k == Ann::K::opaque || pa.ann.k == Ann::K::out_opaque);
  static_assert(!needs_opaque<P> || opaque_ann,
                "ward: a pointer to an incomplete type (a library's own object, like struct sqlite3 *) can only cross as "
                "an opaque pointer: annotate it with ward::opaque(index), or ward::out_opaque(index) for a T ** the "
                "library fills in");
  static_assert(!is_ptr || needs_opaque<P> || (pa.count == 1 && pa.ann.k != Ann::K::handle && pa.ann.k != Ann::K::ext_handle),
                "ward: a pointer parameter needs a declared direction and size: annotate it with ward::in/out/inout(index), "
                "ward::in/out/inout(index, count_index), ward::cstring(index), ward::strings(index), "
                "ward::services(index), ward::shared(index) for sandbox memory, for a pointer the extension hands out "
                "ward::opaque(index), for a function pointer ward::callback(index, user_data_index), or for a struct "
                "of callbacks ward::handlers(index, user_data_index)");
  static constexpr bool is_handle = pa.count == 1 && (pa.ann.k == Ann::K::handle || pa.ann.k == Ann::K::ext_handle);
  static_assert(!is_handle || (std::is_integral_v<P> && sizeof(P) == 8),
                "ward: a ward::handle parameter must be a 64-bit integer in the C ABI");
  static_assert(is_ptr || is_handle || pa.count == 0,
                "ward: a direction/kind annotation names a parameter that is not a pointer");
  static_assert(is_ptr || !pa.nullable, "ward: ward::nullable names a parameter that is not a pointer");
  static_assert(is_ptr || is_scalar_arg<P> || is_record<P>,
                "ward: a by-value parameter must be an integer, floating point, enum, bool or trivially copyable struct");
  static_assert(!std::is_same_v<P, long double>, "ward: long double is not supported");
  static constexpr bool ok_rec = record_ok<P>();
  static_assert(ok_rec,
                "ward: this struct cannot be passed by value (fields must be scalars or such structs, no arrays, bit-fields or "
                "unions, at most 16 fields); pass it by pointer with ward::in(index)");
  static constexpr bool ok_kind = [] {
    using E = pointee_t<P>;
    if constexpr (!is_ptr) {
      return true;
    } else if constexpr (pa.ann.k == Ann::K::opaque) {
      return !std::is_function_v<E>;
    } else if constexpr (pa.ann.k == Ann::K::out_opaque) {
      return std::is_pointer_v<E> && !std::is_function_v<pointee_t<E>>;
    } else if constexpr (needs_opaque<P>) {
      return true;  // reported above
    } else {
      if (pa.ann.k == Ann::K::cstring) return is_string_char_v<E>;
      if (pa.ann.k == Ann::K::services || pa.ann.k == Ann::K::handlers) return std::is_class_v<E>;
      if (pa.ann.k == Ann::K::self) return true;
      if (pa.ann.k == Ann::K::callback || pa.ann.k == Ann::K::sentinel) return std::is_function_v<E>;
      if (pa.ann.k == Ann::K::user_data) return std::is_void_v<E>;
      if (pa.ann.k == Ann::K::strings)
        return std::is_pointer_v<E> && is_string_char_v<std::remove_pointer_t<E>>;
      if (pa.ann.k == Ann::K::shared) return std::is_void_v<E> || std::is_object_v<E>;  // never copied
      if (pa.ann.k == Ann::K::out_text) return std::is_pointer_v<E> && std::is_same_v<pointee_t<E>, char>;
      return !std::is_pointer_v<E> && (std::is_void_v<E> || std::is_trivially_copyable_v<E>);
    }
  }();
  static_assert(ok_kind,
                "ward: annotation does not fit the pointer type (cstring needs const char * (or const unsigned char *), "
                "strings char ** or const char ** (or unsigned char), services and handlers a struct, callback a "
                "function pointer, its user data void *, buffers a trivially copyable element type, opaque any object "
                "pointer, out_opaque a T **, out_text a char ** or const char **; other pointers to pointers are not "
                "supported)");
  static constexpr bool ok_const = [] {
    if constexpr (!is_ptr) {
      return true;
    } else {
      return !(pa.ann.k == Ann::K::out || pa.ann.k == Ann::K::inout || pa.ann.k == Ann::K::out_opaque ||
               pa.ann.k == Ann::K::out_text) ||
             !std::is_const_v<std::remove_pointer_t<P>>;
    }
  }();
  static_assert(ok_const, "ward: an out or inout parameter cannot point to const");
  // [deep] The host's copy of a described struct holds host pointers: it never crosses in.
  static constexpr bool ok_deep = [] {
    if constexpr (!is_ptr) return true;
    else if constexpr (!described<pointee_t<P>>) return true;
    else return pa.ann.k == Ann::K::out || pa.ann.k == Ann::K::self;
  }();
  static_assert(ok_deep, "ward: a pointer to a WARD_STRUCT type is either ward::out(index) (deep-copied back) or "
                         "ward::self(index) (the descriptor a function was called through)");
  static constexpr bool ok_values = [] {
    if constexpr (!is_ptr) return checkable<P>;
    else if constexpr (pa.count == 1 && (pa.ann.k == Ann::K::services || pa.ann.k == Ann::K::callback ||
                                         pa.ann.k == Ann::K::user_data || pa.ann.k == Ann::K::strings ||
                                         pa.ann.k == Ann::K::shared || pa.ann.k == Ann::K::out_text ||
                                         pa.ann.k == Ann::K::sentinel || pa.ann.k == Ann::K::handlers))
      return true;  // functions, an address, strings, or data the host reads only through Sandboxed::read
    else if constexpr (pa.count == 1 && pa.ann.k == Ann::K::self) return true;  // never read by the host
    else if constexpr (opaque_ann || needs_opaque<P>) return true;  // never read by the host
    else return checkable<element_t<P>>;
  }();
  static_assert(ok_values,
                "ward: this parameter's type can hold invalid values ward cannot check: declare "
                "ward::enum_range<E> for an enum from a C header, or ward::all_bit_patterns_valid<T> for a union or "
                "other type ward cannot look into (see ward/iface/values.h)");
  static constexpr bool ok_void = [] {
    if constexpr (!is_ptr) {
      return true;
    } else {
      return !std::is_void_v<pointee_t<P>> || pa.ann.count.given || pa.ann.k == Ann::K::services ||
             pa.ann.k == Ann::K::cstring || pa.ann.k == Ann::K::user_data || pa.ann.k == Ann::K::self || opaque_ann;
    }
  }();
  static_assert(ok_void, "ward: a void pointer needs a byte count: ward::in/out/inout(index, count)");
  static_assert(!pa.releases || (pa.count == 1 && (pa.ann.k == Ann::K::opaque || pa.ann.k == Ann::K::ext_handle)),
                "ward: ward::releases(i) names a parameter that is not ward::opaque(i) or ward::ext_handle(i)");
  // A buffer's size expressions (size.h), checked only where one is declared (CheckSize's
  // static_asserts name what is wrong).
  static_assert(
      std::conditional_t<is_ptr && (pa.ann.count.given || pa.ann.produced.given), CheckSize<F, I>, std::true_type>::value);
  // [callbacks] the parameter a callback, its user data or a string array names.
  static constexpr bool ok_peer = [] {
    const Ann::K k = pa.ann.k;
    if (pa.count != 1 || (k != Ann::K::callback && k != Ann::K::strings && k != Ann::K::user_data && k != Ann::K::handlers))
      return true;
    if (pa.ann.peer == 0xff) return k != Ann::K::callback && k != Ann::K::handlers;
    if (pa.ann.peer >= F::arity || pa.ann.peer == I) return false;
    return []<std::size_t... J>(std::index_sequence<J...>, std::size_t c, Ann::K kind) {
      return ((J == c && (kind == Ann::K::strings ? std::is_integral_v<std::tuple_element_t<J, typename F::args>> &&
                                                       !std::is_same_v<std::tuple_element_t<J, typename F::args>, bool>
                                                 : std::is_pointer_v<std::tuple_element_t<J, typename F::args>>)) ||
              ...);
    }(std::make_index_sequence<F::arity>{}, pa.ann.peer, k);
  }();
  static_assert(ok_peer,
                "ward: ward::callback(i, ud) and ward::handlers(i, ud) need ud to name another parameter, a void *; "
                "ward::strings(i, n) needs n "
                "to name another parameter of integer type");
  static constexpr bool ok_user_data = pa.count != 1 || pa.ann.k != Ann::K::user_data ||
                                       (pa.ann.peer == 0xff) == found_by_token_v<typename F::api>;
  static_assert(ok_user_data,
                "ward: ward::user_data(k) belongs in a WARD_CALLBACK or WARD_HANDLERS declaration; in a WARD_INTERFACE, "
                "ward::callback(i, ud) or ward::handlers(i, ud) names the user-data parameter");
  static constexpr bool ok_callback = [] {
    if constexpr (pa.count == 1 && pa.ann.k == Ann::K::callback && is_ptr) return declared_interface<callback_table<P>>;
    else return true;
  }();
  static_assert(ok_callback, "ward: this callback type was not declared: add WARD_CALLBACK(type, annotations...) "
                             "before the WARD_INTERFACE that takes it (iface/callback.h)");
  static constexpr bool ok_handlers = [] {
    if constexpr (pa.count == 1 && pa.ann.k == Ann::K::handlers && is_ptr) return is_handlers_v<pointee_t<P>>;
    else return true;
  }();
  static_assert(ok_handlers, "ward: this struct of callbacks was not declared: add WARD_HANDLERS(struct, (field, "
                             "annotations...), ...) before the WARD_INTERFACE that takes it (iface/handlers.h)");
  static constexpr bool value = true;
};

template <class F>
struct CheckRet {
  using R = typename F::ret;
  static constexpr bool str = has_flag(F::anns, Ann::K::returns_string);
  static constexpr bool deep = has_flag(F::anns, Ann::K::returns_deep);
  static constexpr bool opq = has_flag(F::anns, Ann::K::returns_opaque);
  static_assert(!needs_opaque<R> || opq,
                "ward: a function returning a pointer to an incomplete type (a library's own object, like struct "
                "sqlite3 *) returns an opaque pointer: add ward::returns_opaque");
  static_assert(!std::is_pointer_v<R> || needs_opaque<R> || opq || deep ||
                    (str && (std::is_same_v<R, const char*> || std::is_same_v<R, const unsigned char*>)),
                "ward: a function returning a pointer is only supported for strings: declare it const char * and add "
                "ward::returns_string (const unsigned char * too, as sqlite3_column_text returns; or ward::returns_opaque for a pointer the host only passes back)");
  static_assert(!str || std::is_pointer_v<R>, "ward: ward::returns_string on a function that does not return a pointer");
  static_assert(!deep || (std::is_pointer_v<R> && described<pointee_t<R>>),
                "ward: ward::returns_deep needs a result that points to a WARD_STRUCT type (declare the struct with "
                "WARD_STRUCT first)");
  static_assert(!opq || (std::is_pointer_v<R> && !str && !std::is_function_v<std::remove_pointer_t<R>>),
                "ward: ward::returns_opaque on a function that does not return an object pointer (or also returns_string)");
  static constexpr bool handle_ok = [] {
    if (!has_flag(F::anns, Ann::K::returns_handle) && !has_flag(F::anns, Ann::K::returns_ext_handle)) return true;
    if constexpr (std::is_integral_v<R>) return sizeof(R) == 8;
    else return false;
  }();
  static_assert(handle_ok,
                "ward: ward::returns_handle / returns_ext_handle on a function that does not return a 64-bit integer");
  static_assert(std::is_void_v<R> || std::is_pointer_v<R> || is_scalar_arg<R> || is_record<R>,
                "ward: unsupported return type");
  static_assert(!std::is_same_v<R, long double>, "ward: long double is not supported");
  static_assert(record_ok<R>(),
                "ward: this struct cannot be returned by value (fields must be scalars or such structs, no arrays)");
  static constexpr bool ok_values = [] {
    if constexpr (std::is_void_v<R> || std::is_pointer_v<R>) return true;
    else return checkable<R>;
  }();
  static_assert(ok_values,
                "ward: this result's type can hold invalid values ward cannot check: declare ward::enum_range<E> for an "
                "enum from a C header, or ward::all_bit_patterns_valid<T> for a union or other type ward cannot look "
                "into (see ward/iface/values.h)");
  static constexpr bool value = true;
};

// ---- [compaction] replay_by_key and cancels (recovery/replay_log.h) ----------------------------

// What a key parameter may be: a value whose bytes say which state it names, the same in every
// instance (the host's token for an extension handle or an opaque pointer, a string's content).
template <class F, std::size_t I>
consteval bool key_param_ok() {
  using P = std::tuple_element_t<I, typename F::args>;
  constexpr ParamAnn pa = ann_for(F::anns, I);
  if constexpr (std::is_pointer_v<P>)
    return pa.count == 1 && (pa.ann.k == Ann::K::opaque || pa.ann.k == Ann::K::cstring) && !pa.nullable;
  else
    return std::is_integral_v<P> || std::is_enum_v<P>;
}

// The annotations of F's compaction rule, checked on F alone; CheckCancels checks a cancels
// target against the interface.
template <class F>
struct CheckKeys {
  static constexpr Ann c = F::compaction;
  static constexpr int rules = [] {
    int n = 0;
    for (const Ann& a : F::anns)
      n += a.k == Ann::K::replay_latest || a.k == Ann::K::replay_by_key || a.k == Ann::K::cancels;
    return n;
  }();
  static_assert(rules <= 1, "ward: a function has at most one of ward::replay_latest, ward::replay_by_key, ward::cancels");
  static_assert((c.keys >> F::arity) == 0,
                "ward: ward::replay_by_key / ward::cancels names a key parameter that does not exist (an index past "
                "the end of the parameter list)");
  static_assert(std::popcount(c.keys) == c.nkeys, "ward: ward::replay_by_key / ward::cancels names a key parameter twice");
  static constexpr bool kinds_ok = []<std::size_t... I>(std::index_sequence<I...>) {
    return ((!((c.keys >> I) & 1u) || key_param_ok<F, I>()) && ...);
  }(std::make_index_sequence<F::arity>{});
  static_assert(kinds_ok, "ward: a key parameter must be an integer, enum or bool by value (an extension handle too), a "
                          "ward::opaque(i) pointer or a ward::cstring(i) string, not nullable");
  static constexpr bool hands_out = [] {
    for (const Ann& a : F::anns)
      if (a.k == Ann::K::returns_ext_handle || a.k == Ann::K::returns_opaque || a.k == Ann::K::out_opaque ||
          a.k == Ann::K::returns_deep)
        return true;
    return false;
  }();
  static_assert(!(F::keyed || F::cancels) || !hands_out,
                "ward: a call that hands out a handle, an opaque pointer or a descriptor cannot be replaced or cancelled "
                "by key (the host may still hold what each call handed out): close it with ward::releases(i), which "
                "drops what was logged for it");
  static_assert(!(F::keyed || F::cancels) || !F::releases_any,
                "ward: a call with ward::releases(i) is never logged: it cannot be ward::replay_by_key or ward::cancels");
  static constexpr bool value = true;
};

template <class Fns, std::size_t... I>
// `tag` is never null (only cancels rules are looked up), and is read, never compared: see FnTag.
consteval std::size_t index_of_tag(const FnTag* tag, std::index_sequence<I...>) {
  std::size_t found = sizeof...(I);
  ((found == sizeof...(I) && fn_tag<std::tuple_element_t<I, Fns>::member>.id == tag->id ? (found = I) : 0), ...);
  return found;
}

// A function's index in the interface whose Fn records are Fns, by fn_tag; past the end if none.
template <class Fns>
consteval std::size_t fn_index_of_tag(const FnTag* tag) {
  return index_of_tag<Fns>(tag, std::make_index_sequence<std::tuple_size_v<Fns>>{});
}

// A key parameter's type and annotation, in parameter order (the first popcount(keys) entries).
struct KeySig {
  HandleType type = nullptr;  // handle_type<P>(): one tag per type
  Ann::K kind = Ann::K::nullable;
};
template <class F, std::size_t... I>
consteval std::array<KeySig, sizeof...(I) + 1> key_sigs(std::index_sequence<I...>) {
  const KeySig all[] = {KeySig{handle_type<std::tuple_element_t<I, typename F::args>>(), ann_for(F::anns, I).ann.k}...,
                        KeySig{}};
  std::array<KeySig, sizeof...(I) + 1> out{};
  std::size_t n = 0;
  for (std::size_t i = 0; i < sizeof...(I); ++i)
    if ((F::compaction.keys >> i) & 1u) out[n++] = all[i];
  return out;
}

// C's cancels key against T's replay_by_key key: as many parameters, pairwise of the same type
// and kind, so the same values give the same key bytes.
template <class C, class T>
consteval bool cancel_keys_match() {
  const int n = std::popcount(C::compaction.keys);
  if (n != std::popcount(T::compaction.keys)) return false;
  const auto c = key_sigs<C>(std::make_index_sequence<C::arity>{});
  const auto t = key_sigs<T>(std::make_index_sequence<T::arity>{});
  for (int i = 0; i < n; ++i)
    if (c[i].type != t[i].type || c[i].kind != t[i].kind) return false;
  return true;
}

template <class Fns, std::size_t I>
struct CheckCancel {
  using C = std::tuple_element_t<I, Fns>;
  static constexpr std::size_t t = fn_index_of_tag<Fns>(C::compaction.target);
  static constexpr bool found = t < std::tuple_size_v<Fns>;
  static_assert(found, "ward: ward::cancels<&api::f> names a function that is not declared in this interface");
  using T = std::tuple_element_t<(found ? t : I), Fns>;
  static_assert(!found || T::keyed,
                "ward: ward::cancels<&api::f> names a function that is not logged by key: declare f "
                "ward::replay_by_key(i, ...) (or ward::replay_latest)");
  static_assert(!found || !T::keyed || cancel_keys_match<C, T>(),
                "ward: ward::cancels<&api::f>(i, ...) needs as many key parameters as f's ward::replay_by_key, of the "
                "same types and kinds, in order");
  static constexpr bool value = true;
};

// Every cancels rule of an interface (WARD_INTERFACE checks it once its Fn records exist).
template <class Fns>
consteval bool check_cancels() {
  return []<std::size_t... I>(std::index_sequence<I...>) {
    return (std::conditional_t<std::tuple_element_t<I, Fns>::cancels, CheckCancel<Fns, I>, std::true_type>::value && ...);
  }(std::make_index_sequence<std::tuple_size_v<Fns>>{});
}

}  // namespace ward::detail
