// The generated stubs, both directions, written once over the codec (codec.h):
//   call_fn   host -> extension: encode every argument into a frame, invoke, decode the result,
//             then copy out and inout data back into the host's objects;
//   dispatch  extension -> host: decode every argument into host copies, run the host's
//             function on them, encode its result, copy out data back into the frame.
// Both speak only to the crossing (backend/crossing.h), so they run over any backend.
// A callback made during a supervised call that may be retried goes through that call's journal
// (iface/callback_journal.h): answered from an earlier attempt's record while it repeats it.
//
// Host -> extension: out and inout data reaches the host's objects only when the call succeeds
// and every buffer passed its checks (a failed call leaves them untouched). Extension -> host:
// anything malformed is a violation and the service never runs.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ward/backend/backend.h"
#include "ward/iface/callback_journal.h"
#include "ward/iface/codec.h"
#include "ward/iface/interface.h"

namespace ward::detail {

// ---- host -> extension --------------------------------------------------------------------------
// `table` and `object` name an object call ([deep], object.h): table 0 is the extension's own.
template <class F, class Args, std::size_t... I>
Result<host_result_t<F>> call_fn(Domain& d, std::uint32_t index, Args& args, std::index_sequence<I...>,
                                 std::uint32_t table = 0, std::uint64_t object = 0) {
  auto c = WARD_TRY(d.begin(index));
  if (table != 0) WARD_TRY(c.target(table, object));
  constexpr std::size_t n = F::arity;
  auto frame = WARD_TRY(c.alloc(sizeof(schema::Slot) * (n + 1)));
  auto* slots = reinterpret_cast<schema::Slot*>(c.at(frame));
  slots[0] = {object, 0};  // the child reads an object call's object here
  std::array<CopyBack, n + 1> back{};
  Result<void> ok{};
  ((ok ? (ok = codec_of<F, I>::template encode<F, I>(c, slots[I + 1], args, back[I]), 0) : 0), ...);
  if (!ok) return std::unexpected(ok.error());
  auto r = WARD_TRY(c.invoke(frame));
  auto result = result_codec_of<F>::template decode<F>(c, r);
  if (!result) return result;
  std::array<DeepValue, n + 1> deeps;  // [deep] out parameters, decoded before anything is written
  for (std::size_t i = 0; i < back.size(); ++i)
    if (back[i].decode_deep) deeps[i] = WARD_TRY(back[i].decode_deep(c, back[i].off));
  // ward::releases: the call that frees the object completed; its token goes.
  for (const CopyBack& b : back)
    if (b.release) c.opaques().release(b.release);
  // Only a completed call whose out data is valid changes the host's objects. Data to check is
  // copied out of the frame once (the extension may still be writing it), checked in that copy,
  // and written to the host's objects only when every buffer passed.
  std::array<std::vector<std::byte>, n + 1> checked;
  auto keep = WARD_TRY(settle_filled(c, r, back, checked));  // out data filled in part (size.h)
  if (!keep) return result;
  for (std::size_t i = 0; i < back.size(); ++i) {
    const CopyBack& b = back[i];
    if (!b.host || !b.bytes || !b.check) continue;
    if (checked[i].empty()) checked[i].assign(c.at(b.off), c.at(b.off) + b.bytes);
    WARD_TRY(b.check(c, i, checked[i].data(), b.bytes));
  }
  for (std::size_t i = 0; i < back.size(); ++i) {
    const CopyBack& b = back[i];
    if (b.host && b.bytes)
      std::memcpy(b.host, checked[i].empty() ? c.at(b.off) : checked[i].data(), b.delivered ? b.delivered : b.bytes);
    if (b.deep) *b.deep = std::move(deeps[i]);
  }
  return result;
}

// ---- extension -> host (service dispatch) --------------------------------------------------------
// Scalars decode first: a buffer's count parameter must be known before the buffer.
template <class F, bool Late, std::size_t... I>
Result<void> decode_pass(Upcall& up, held_args<F>& held, std::array<CopyBack, F::arity + 1>& back,
                         std::index_sequence<I...>) {
  Result<void> ok{};
  ((ok && codec_of<F, I>::late == Late ? (ok = codec_of<F, I>::template decode<F, I>(up, held, back[I]), 0) : 0), ...);
  return ok;
}

// The zero result of a handler field that is not run.
template <class F>
Result<void> skipped(Upcall& up) {
  schema::Slot ret{0, 0};
  if constexpr (!std::is_void_v<typename F::ret>) ret = WARD_TRY(result_codec_of<F>::template encode<F>(up, typename F::ret{}));
  up.set_return(ret);
  return {};
}

// Runs the host's function on the decoded arguments and hands its result and out data to the
// extension; `kept` (a supervised call's callback) receives both, for a retry to answer with.
template <class F, class Fn>
Result<void> deliver(Upcall& up, Fn fn, held_args<F>& held, std::array<CopyBack, F::arity + 1>& back,
                     CallbackRecord::Entry* kept) {
  auto args = args_from<F>(held);
  schema::Slot ret{0, 0};
  if constexpr (std::is_void_v<typename F::ret>) {
    std::apply(fn, args);
  } else {
    const auto r = std::apply(fn, args);
    if (kept) keep_result<F>(*kept, r);
    ret = WARD_TRY(result_codec_of<F>::template encode<F>(up, r));
  }
  for (const CopyBack& b : back) {
    if (!b.host || !b.bytes) continue;
    auto p = WARD_TRY(up.writable(b.off, b.bytes));
    std::memcpy(p, b.host, b.bytes);
    if (kept) kept->out.insert(kept->out.end(), static_cast<const std::byte*>(b.host), static_cast<const std::byte*>(b.host) + b.bytes);
  }
  up.set_return(ret);
  return {};
}

// A callback during a supervised call that may be retried (iface/callback_journal.h): answered
// from the record of an earlier attempt while it repeats it, otherwise delivered and recorded.
template <class F, class Fn>
Result<void> deliver_journaled(CallbackJournal& j, Upcall& up, Fn fn, held_args<F>& held,
                               std::array<CopyBack, F::arity + 1>& back) {
  ArgDigest d;
  [&]<std::size_t... I>(std::index_sequence<I...>) { (digest_param<F, I>(d, std::get<I>(held)), ...); }(
      std::make_index_sequence<F::arity>{});
  std::uint64_t out_bytes = 0;
  for (const CopyBack& b : back) out_bytes += b.host ? b.bytes : 0;
  d.u64(out_bytes);  // so a match always has room for the recorded out data
  if (const CallbackRecord::Entry* e = j.match(up.table(), d.value())) {
    std::size_t at = 0;
    for (const CopyBack& b : back) {
      if (!b.host || !b.bytes) continue;
      auto p = WARD_TRY(up.writable(b.off, b.bytes));
      const std::size_t n = std::min<std::size_t>(b.bytes, e->out.size() - at);  // equal unless the digests collide
      if (n) std::memcpy(p, e->out.data() + at, n);
      at += n;
    }
    if constexpr (!std::is_void_v<typename F::ret>) {
      up.set_return(WARD_TRY(result_codec_of<F>::template encode<F>(up, kept_result<F>(*e))));
    }
    return {};
  }
  CallbackRecord::Entry kept{up.table(), d.value(), {}, false, {}};
  WARD_TRY(deliver<F>(up, fn, held, back, &kept));
  j.delivered(std::move(kept));
  return {};
}

template <class F>
Result<void> dispatch(Upcall& up, const void* impl) {
  using Api = typename F::api;
  constexpr bool is_callback = found_by_token_v<Api>;  // callbacks and handler structs
  std::remove_cvref_t<decltype(std::declval<const Api&>().*F::member)> fn = nullptr;
  if constexpr (!is_callback) {
    fn = static_cast<const Api*>(impl)->*F::member;
    if (!fn) return up.violation("called a service the host did not provide");
  }
  held_args<F> held{};
  std::array<CopyBack, F::arity + 1> back{};
  constexpr auto all = std::make_index_sequence<F::arity>{};
  if (auto ok = decode_pass<F, false>(up, held, back, all); !ok) return ok;
  if (auto ok = decode_pass<F, true>(up, held, back, all); !ok) return ok;
  if constexpr (is_callback) {
    // A callback's function is the registration its (decoded, checked) user data named.
    fn = callback_fn<F>(held);
    // A handler field the host cleared since it handed the struct over: nothing to run.
    if constexpr (is_handlers_v<Api>)
      if (!fn) return skipped<F>(up);
    if constexpr (journaled<F>) {
      if (CallbackJournal* j = CallbackJournal::active(up.domain())) return deliver_journaled<F>(*j, up, fn, held, back);
    }
  }
  return deliver<F>(up, fn, held, back, nullptr);
}

// ---- tables -------------------------------------------------------------------------------------
// [deep] Sets the struct id of every deep parameter and result of `d` (function F).
template <class F>
void describe_deep(schema::Fn& d, StructTable& structs) {
  if constexpr (result_kind<F>() == ResultKind::deep) d.ret.table = structs.id<pointee_t<typename F::ret>>();
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (
        [&] {
          if constexpr (param_kind<F, I>() == ParamKind::deep_out)
            d.params[I].table = structs.id<pointee_t<param_type<F, I>>>();
        }(),
        ...);
  }(std::make_index_sequence<F::arity>{});
}

template <class Api, bool Services>
TableSpec table_spec(StructTable& structs) {
  TableSpec t;
  t.name = std::string(interface_traits<Api>::name);
  t.struct_size = sizeof(Api);
  t.callback = found_by_token_v<Api>;
  // A library's functions are bound by name in the child: the symbol is the member's name.
  if constexpr (!Services && is_library<Api>) {
    const std::size_t prefix = interface_traits<Api>::name.size() + 2;  // "zstd_lib::"
    std::apply([&](const auto&... fn) { (t.symbols.emplace_back(std::string_view(fn.name).substr(prefix)), ...); },
               interface_traits<Api>::fns);
  }
  std::apply(
      [&](const auto&... fn) {
        (
            [&](const auto& f) {
              using F = std::remove_cvref_t<decltype(f)>;
              t.fns.push_back(fn_desc<F>(member_offset<F::member>()));
              describe_deep<F>(t.fns.back(), structs);
              t.fn_names.emplace_back(f.name);
              if constexpr (Services) {
                static_assert([]<std::size_t... I>(std::index_sequence<I...>) {
                  return ((param_kind<F, I>() != ParamKind::self && param_kind<F, I>() != ParamKind::deep_out) && ...);
                }(std::make_index_sequence<F::arity>{}) && result_kind<F>() != ResultKind::deep,
                              "ward: host services cannot take or return descriptors (ward::self, WARD_STRUCT types)");
                static_assert([]<std::size_t... I>(std::index_sequence<I...>) {
                  return ((param_kind<F, I>() != ParamKind::services) && ...);
                }(std::make_index_sequence<F::arity>{}), "ward: host services cannot take service tables themselves");
                t.dispatch.push_back(&dispatch<F>);
              }
            }(fn),
            ...);
      },
      interface_traits<Api>::fns);
  return t;
}

// [deep] Descriptor types with a WARD_INTERFACE of their own that Api's functions return: each
// becomes an object table (object.h).
template <class L, class F>
struct add_fn_object {
  using type = L;
};
template <class L, class F>
  requires(result_kind<F>() == ResultKind::deep && declared_interface<pointee_t<typename F::ret>>)
struct add_fn_object<L, F> {
  using type = typename push_unique<L, pointee_t<typename F::ret>>::type;
};
template <class L, class Tuple, std::size_t I = 0>
struct add_all_objects {
  using type = L;
};
template <class L, class Tuple, std::size_t I>
  requires(I < std::tuple_size_v<Tuple>)
struct add_all_objects<L, Tuple, I> {
  using type = typename add_all_objects<typename add_fn_object<L, std::tuple_element_t<I, Tuple>>::type, Tuple, I + 1>::type;
};
template <class Api>
using objects_of = typename add_all_objects<type_list<>, fns_tuple<Api>>::type;

// The plugin's table, then every host service table it hands out, then its object tables; the
// described structs they use go to `structs`.
template <class Api, class... S, class... O>
std::vector<TableSpec> all_tables(type_list<S...>, type_list<O...>, StructTable& structs) {
  std::vector<TableSpec> v;
  v.push_back(table_spec<Api, false>(structs));
  (v.push_back(table_spec<S, true>(structs)), ...);
  (
      [&] {
        v.push_back(table_spec<O, false>(structs));
        v.back().object = true;
        v.back().object_key = type_key<O>();
      }(),
      ...);
  return v;
}

}  // namespace ward::detail
