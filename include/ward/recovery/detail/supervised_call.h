// One supervised call, whatever it is called through: a function of the extension's interface
// (Extension<Api>::call, supervisor.h) or a function pointer of a descriptor the extension
// returned through the Supervisor (ward::Object<T>, iface/object.h). The recovery steps are the
// ones supervisor.h's file comment describes; this header is the one loop that takes them.
//
// A call is sent by a Send: `send(LiveInstance&, Args&) -> Result<host_result_t<F>>` sends it
// once to that instance; `send.present(LiveInstance&)` says whether what it is called through
// exists there; `send.fn`, `send.scope` key the replay log (ReplayLog::Entry); `send.name`
// names the function in notices; `send.loggable` says whether a replayable call may be logged
// (an object call only when its object comes back after a restart).
//
// [object] Descriptors. A descriptor returned through the Supervisor (ward::returns_deep, a type
// with its own WARD_INTERFACE) is kept in the instance's OpaqueTable under a token of its own
// type (descriptor_type<T>), and the host's Deep carries that token and the typed calls of T's
// interface (object_calls<T>) instead of an address. The replay of the call that returned it
// installs the new child's address under the same token (OpaqueTable::adopt) when the replayed
// result has the same function pointers set; otherwise the token stays stale and every call
// through it is refused (misuse) before anything is sent.
//
// Threads: as supervisor.h; nothing here holds a lock of its own.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "ward/iface/callback_journal.h"
#include "ward/iface/object.h"
#include "ward/iface/sandbox.h"
#include "ward/iface/stubs.h"
#include "ward/recovery/detail/recovery_core.h"
#include "ward/recovery/replay_log.h"

namespace ward::detail {

// The token type of a descriptor of type T (apart from a T * opaque pointer's).
template <class T>
struct DescriptorTag;
template <class T>
inline constexpr HandleType descriptor_type = handle_type<DescriptorTag<T>>();

// What a completed call gave the host that a replay must give again: the token its result became
// (ext handle, opaque pointer, descriptor; 0 if none) and a descriptor's function-pointer bits.
struct Produced {
  std::uint64_t token = 0;
  std::uint32_t functions = 0;
  bool log = true;  // false: a null descriptor, nothing for a replay to re-create
};

template <class T>
const SupervisedObject::Erased* object_calls();

// Turns a successful result into what the host holds (tokens for ext handles and descriptors).
template <class F, class R>
Result<Produced> take_result(RecoveryCore& core, Domain& d, R& r, bool replayed) {
  Produced p;
  if constexpr (result_kind<F>() == ResultKind::deep) {
    using T = pointee_t<typename F::ret>;
    DeepValue v = r->unverified_value_i_trust_it().value();
    p.log = v.root != nullptr;
    if (v.domain) {  // an object: T has a WARD_INTERFACE (ResultCodec<deep>)
      p.token = WARD_TRY(d.opaques().token_for(v.address, descriptor_type<T>));
      p.functions = v.functions;
      v.domain = nullptr;
      v.table = 0;
      v.address = 0;
      v.supervised = {object_calls<T>(), &core, p.token, replayed};
      r = R(typename R::value_type(Deep<T>(std::move(v))));
    }
  } else if constexpr (F::returns_ext) {
    p.token = WARD_TRY(d.opaques().token_for(static_cast<std::uint64_t>(r->unverified_value_i_trust_it()), ext_handle_type));
    r = R(typename R::value_type(static_cast<typename F::ret>(p.token)));
  } else if constexpr (F::returns_opq) {
    p.token = r->token();
  }
  return p;
}

// After a replay: installs what the replayed call `r` returned under the token the host holds.
template <class F, class R>
Result<void> adopt_result(OpaqueTable& tokens, const R& r, const Produced& was) {
  if constexpr (result_kind<F>() == ResultKind::deep) {
    const DeepValue& v = r->unverified_value_i_trust_it().value();
    // The same object as far as the host can tell (it calls only what was set), or stale.
    if (v.domain && v.functions == was.functions)
      tokens.adopt(WARD_TRY(tokens.token_for(v.address, descriptor_type<pointee_t<typename F::ret>>)), was.token);
  } else if constexpr (F::returns_ext) {
    const auto real = static_cast<std::uint64_t>(r->unverified_value_i_trust_it());
    tokens.adopt(WARD_TRY(tokens.token_for(real, ext_handle_type)), was.token);
  } else if constexpr (F::returns_opq) {
    tokens.adopt(r->token(), was.token);
  }
  return {};
}

// Logs a completed state-setting call with deep copies of its arguments, as a closure that sends
// it again to a fresh instance. What the call produced for the host (its result's token and the
// tokens its out_opaque parameters received) is installed under the same tokens in the fresh
// instance's table. Its callbacks were delivered when it ran: each replay is matched against
// what they delivered (`seen`, iface/callback_journal.h), which then follows what the host saw.
// A call sent through an object that did not come back is skipped: what it made stays stale.
template <class F, class Send, class Args, std::size_t... I>
void record(RecoveryCore& core, const Send& send, const Args& args, Produced produced, CallbackRecord seen,
            std::index_sequence<I...> idx) {
  // Strings and in-buffers by value, out-buffers as scratch space of the same size, service
  // tables by pointer (the host's tables outlive the extension): the codec's capture.
  auto captured = std::make_shared<held_args<F>>(capture_args<F>(args));
  const auto outs = out_tokens<F>(args, idx);
  auto callbacks = std::make_shared<CallbackRecord>(std::move(seen));
  auto replay = [captured, produced, outs, callbacks, send, core = &core](LiveInstance& inst) -> Result<void> {
    if (!send.present(inst)) return {};
    OpaqueTable& tokens = inst.domain().opaques();
    typename F::args a = args_from<F>(*captured);
    WARD_TRY(translate_ext_handles<F>(a, tokens, std::index_sequence<I...>{}));
    CallbackJournal journal(callbacks.get());
    CallbackJournal::Scope in_journal(journal);
    journal.begin(inst.domain());
    auto r = send(inst, a);
    core->callbacks_settled(journal.end(r.has_value()), send.name);
    if (!r) return std::unexpected(r.error());
    WARD_TRY(adopt_result<F>(tokens, r, produced));
    const auto fresh = out_tokens<F>(a, std::index_sequence<I...>{});
    for (std::size_t i = 0; i < fresh.size(); ++i) tokens.adopt(fresh[i], outs[i]);
    return {};
  };
  const bool deep = result_kind<F>() == ResultKind::deep;
  ReplayLog::Entry e{send.fn, std::move(replay), send.scope, deep ? produced.token : 0};
  // [compaction] (replay_log.h) Its key, the tokens it took and made, what it cancels.
  e.keyed = F::keyed;
  e.key = key_bytes<F, F::compaction.keys>(args, idx);
  e.tokens = tokens_in<F>(args, idx);
  if (produced.token) e.tokens.push_back(produced.token);
  for (std::uint64_t t : outs)
    if (t) e.tokens.push_back(t);
  if constexpr (F::cancels) {
    using Fns = fns_tuple<typename F::api>;
    using T = std::tuple_element_t<fn_index_of_tag<Fns>(F::compaction.target), Fns>;
    // The key bytes of this call are those of T's key: same types, same order (CheckCancel).
    const ReplayLog::Cancel c{static_cast<std::uint32_t>(fn_index_of_tag<Fns>(F::compaction.target)), e.key};
    static_assert(T::keyed);
    e.keyed = true;  // kept only if it cancelled nothing: then the latest per key
    core.record(std::move(e), &c);
  } else {
    core.record(std::move(e), nullptr);
  }
}

// After a successful ward::releases call: the tokens it closed are dropped from the log (and an
// extension handle's from the instance's table; an opaque pointer's the codec already dropped).
// True if the last checkpoint holds one of them: then the call itself must be logged.
template <class F, class Args, std::size_t... I>
bool release_tokens(RecoveryCore& core, Domain& d, const Args& args, std::index_sequence<I...>) {
  bool pinned = false;
  (
      [&] {
        if constexpr (ann_for(F::anns, I).releases) {
          std::uint64_t t;
          if constexpr (F::template is_ext_handle<I>) t = static_cast<std::uint64_t>(std::get<I>(args));
          else t = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(std::get<I>(args)));
          if (!t) return;
          if constexpr (F::template is_ext_handle<I>) d.opaques().release(t);
          if (core.released(t)) pinned = true;
        }
      }(),
      ...);
  return pinned;
}

// One call: admitted by the core (ext handles translated to the current instance's values),
// sent, and on failure handed back to the core, which recovers and says whether to send again.
template <class F, class Send, class Args, std::size_t... I>
Result<host_result_t<F>> supervised_call(RecoveryCore& core, const Send& send, Args& args, std::index_sequence<I...> idx) {
  using R = Result<host_result_t<F>>;
  RecoveryCore::CallState state;
  // What the call's callbacks delivered, across its attempts: a retry answers the ones an
  // earlier attempt delivered from it (iface/callback_journal.h). Only calls that may run again
  // keep one; the others still install a journal, so their callbacks stay out of an enclosing
  // call's record.
  CallbackRecord seen;
  CallbackJournal journal(F::is_idempotent || F::replays ? &seen : nullptr);
  CallbackJournal::Scope in_journal(journal);
  std::optional<SandboxPlaces<Args>> sandboxed;  // taken at the first failure
  for (;;) {
    Args real = args;  // ext handles translated; `args` keeps the host's values for the log
    if (sandboxed) rebase_sandbox(real, *sandboxed, idx);
    auto t = core.admit(state, [&](const OpaqueTable& tokens) { return translate_ext_handles<F>(real, tokens, idx); });
    if (!t) return R(std::unexpected(t.error()));
    RecoveryCore::InFlight busy(core);  // until it has logged: a checkpoint waits for it
    journal.begin(t->instance->domain());
    R r = send(*t->instance, real);
    core.callbacks_settled(journal.end(r.has_value()), send.name);
    if (r) {
      const Produced produced = WARD_TRY(take_result<F>(core, t->instance->domain(), r, F::replays && send.loggable));
      if constexpr (F::replays)
        if (send.loggable && produced.log) record<F>(core, send, args, produced, std::move(seen), idx);
      if constexpr (F::releases_any) {
        // Closing an object a checkpoint holds: replayed after a restore (recovery/checkpoint.h).
        if (release_tokens<F>(core, t->instance->domain(), args, idx) && !F::replays)
          record<F>(core, send, args, produced, std::move(seen), idx);
      }
      busy.end();
      core.maybe_checkpoint();
      return r;
    }
    if (!sandboxed) sandboxed = sandbox_places(args, idx);
    auto next = core.after_failure(state, *t, r.error(), F::is_idempotent);
    if (!next) return R(std::unexpected(next.error()));
    if (*next == RecoveryCore::Next::give_error) return r;
  }
}

// [object] Sends function G (index K of T's interface) through the object `token` names in the
// instance it goes to; an object that instance does not hold (stale) is refused unsent.
template <class T, class G>
struct ObjectSend {
  std::uint32_t fn;
  std::uint64_t scope;  // the object's token
  const char* name;
  bool loggable;

  bool present(LiveInstance& inst) const { return inst.domain().opaques().value_of(scope, descriptor_type<T>).has_value(); }
  template <class Args>
  Result<host_result_t<G>> operator()(LiveInstance& inst, Args& a) const {
    Domain& d = inst.domain();
    auto address = d.opaques().value_of(scope, descriptor_type<T>, "descriptor");
    if (!address) {
      Error e = address.error();
      e.function = name;
      e.plugin = d.name();
      return std::unexpected(std::move(e));
    }
    return call_fn<G>(d, fn, a, std::make_index_sequence<G::arity>{}, d.object_table(type_key<T>()), *address);
  }
};

template <class T, std::size_t K>
Result<host_result_t<std::tuple_element_t<K, fns_tuple<T>>>> object_call(const SupervisedObject& o,
                                                                           typename std::tuple_element_t<K, fns_tuple<T>>::args& args) {
  using G = std::tuple_element_t<K, fns_tuple<T>>;
  const ObjectSend<T, G> send{static_cast<std::uint32_t>(K), o.token, std::get<K>(interface_traits<T>::fns).name, o.replayed};
  return supervised_call<G>(*static_cast<RecoveryCore*>(o.core), send, args, std::make_index_sequence<G::arity>{});
}

// T's functions, in interface order, as SupervisedObject::calls holds them (object.h casts each
// back to its own type).
template <class T>
const SupervisedObject::Erased* object_calls() {
  static const auto calls = []<std::size_t... K>(std::index_sequence<K...>) {
    return std::array<SupervisedObject::Erased, sizeof...(K)>{reinterpret_cast<SupervisedObject::Erased>(&object_call<T, K>)...};
  }(std::make_index_sequence<std::tuple_size_v<fns_tuple<T>>>{});
  return calls.data();
}

}  // namespace ward::detail
