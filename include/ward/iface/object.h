// ward::Object<T>: calling the function pointers of a descriptor the extension returned
// ([deep]; deep.h copies its data).
//
//   WARD_STRUCT(plugin_desc, (name, ward::text), (process, ward::function));
//   WARD_INTERFACE(plugin_desc, (process, ward::self(0), ward::in(1, 2)));
//   WARD_LIBRARY(plugins, (get_plugin, ward::returns_deep));
//   auto d = (*lib)->get_plugin(0);                       // Tainted<Deep<plugin_desc>>
//   auto obj = d->unverified_value_i_trust_it().object();  // Object<plugin_desc>
//   auto r = obj->process(nullptr, data, n);               // or obj.call<&plugin_desc::process>(...)
// Under a Supervisor the same, through the Extension: `(**ext)->get_plugin(0)`, declared
// (get_plugin, ward::returns_deep, ward::replay_after_restart) so a restart remaps the object.
//
// A descriptor type with a WARD_INTERFACE of its own (its function-pointer members annotated as
// any interface's) that a function of the library or plugin table returns with
// ward::returns_deep becomes an object table: the child calls the function pointer it reads from
// the object at the member's offset, at call time. ward::self(i) passes the object itself. A
// function pointer the extension left null is misuse (from the host's copy; nothing is sent).
//
// Through an Instance<Api>: the host names objects only by addresses the extension itself
// returned through such a result in this instance (a Deep from elsewhere, or from an earlier
// instance, is misuse and nothing is sent).
//
// Through a Supervisor's Extension<Api> (recovery/supervised_call.h): the object is a token in
// the extension's OpaqueTable, like an opaque pointer, and each call goes through the
// Supervisor's call path: recovery after a crash, a retry when the function is ward::idempotent,
// the replay log when it is ward::replay_after_restart (scoped to this object for
// replay_latest). After a restart the object is remapped to the address the replay of the call
// that returned it yields in the new child; so declare the getter ward::replay_after_restart
// (`ladspa_descriptor`: idempotent too). An object whose getter was not replayed, or whose replay
// returned null or a descriptor with a different set of function pointers, is stale: refused
// (misuse, "from an instance that has since been restarted"), never called at an old address;
// its replayable calls are not logged, and what they produced (instance handles) is stale too.
// A replayed getter is logged once per distinct object it returned (calling it again returns
// what the log already re-creates) and not at all when it returns null.
//
// Lifetime and threads: an Object refers to its Instance's domain, or to its Extension, and
// must not outlive it. Calls are serialized with the other calls of the instance; an Object may
// be used from any thread.
#pragma once

#include <cstdint>
#include <utility>

#include "ward/backend/backend.h"
#include "ward/iface/deep.h"
#include "ward/iface/interface.h"
#include "ward/iface/stubs.h"

namespace ward {

template <class T>
class Object {
  static_assert(declared_interface<T>, "ward: Object<T> needs a WARD_INTERFACE declaring T's function pointers");

 public:
  explicit Object(detail::DeepValue v) : v_(std::move(v)) {}

  // Calls the extension's function pointer M of this object with the C function's own arguments.
  template <auto M, class... A>
  [[nodiscard]] auto call(A&&... a) {
    using D = detail::declared_fn<T, M, sizeof...(A)>;
    using F = typename D::type;
    using R = Result<detail::host_result_t<F>>;
    auto misuse = [](std::string what) -> R {
      Error e = fail(Errc::misuse, std::move(what)).error();
      e.function = std::get<D::index>(interface_traits<T>::fns).name;
      return std::unexpected(std::move(e));
    };
    const bool supervised = v_.supervised.calls != nullptr;
    if (!supervised && (!v_.domain || !v_.table))
      return misuse("not an object the extension returned (a Deep that is only data, or one whose type has no "
                    "WARD_INTERFACE)");
    if (!function_set<M>()) return misuse("the extension left this function pointer null");
    typename F::args args{std::forward<A>(a)...};
    if (supervised) {
      using Typed = R (*)(const detail::SupervisedObject&, typename F::args&);
      return reinterpret_cast<Typed>(v_.supervised.calls[D::index])(v_.supervised, args);
    }
    return detail::call_fn<F>(*v_.domain, static_cast<std::uint32_t>(D::index), args,
                              std::make_index_sequence<F::arity>{}, v_.table, v_.address);
  }
  // The same call, spelled like the direct one: `obj->run(handle, 64)`.
  [[nodiscard]] detail::arrow<proxy<T, Object>> operator->() { return {proxy<T, Object>(this)}; }

 private:
  // Whether M was declared ward::function in T's WARD_STRUCT and set; undeclared: assumed set.
  template <auto M>
  bool function_set() const {
    constexpr bool declared = detail::field_index_of<T>::template find<M>() != ~0u;
    if constexpr (declared) return (v_.functions >> detail::field_index_of<T>::template of<M>()) & 1u;
    else return true;
  }
  detail::DeepValue v_;
};

template <class T>
Object<T> Deep<T>::object() const {
  return Object<T>(cell_ ? cell_->value : detail::DeepValue{});
}

}  // namespace ward
