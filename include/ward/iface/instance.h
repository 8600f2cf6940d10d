// Instance<Api>: one instance of a plain-C extension in a domain of its own (any backend; the
// process backend by default), called through the stubs generated from its WARD_INTERFACE
// declaration (stubs.h over codec.h). It ends with its domain; Extension<Api>
// (recovery/supervisor.h) is the one that outlives instances.
//
//   auto dev = ward::Instance<device_api>::load("libdevice.so", "device_entry", policy);
//   ward::Result<ward::Tainted<long>> n = dev->call<&device_api::write>(block, data, size);
//
// Arguments are the C function's own. Host -> extension: in data is copied into the arena; out
// and inout data is copied back into the host's objects only when the call succeeds, so a failed
// call leaves them untouched (shadow copies). Results come back Tainted until verified. A
// pointer parameter of a service-table type (ward::services) registers the host's table with
// the domain; the host's struct must stay valid while the extension may call it.
// Extension -> host: the service's arguments are copied out of the arena into host memory, the
// host function runs on them, out data is copied back. Anything malformed the extension sends
// is a violation and ends the domain.
// Values with invalid bit patterns (iface/values.h): every copy of extension data into a host
// object goes through detail::sanitize, once, on the host's copy: bools become 0 or 1; an enum
// outside its declared ward::enum_range makes a call fail with bad_data (no out or inout data
// reaches the host's objects) and a host service's argument a violation (the service never
// runs).
#pragma once

#include <array>
#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ward/backend/backend.h"
#include "ward/core/policy.h"
#include "ward/core/tainted.h"
#include "ward/iface/interface.h"
#include "ward/iface/object.h"
#include "ward/iface/sandbox.h"
#include "ward/iface/stubs.h"

namespace ward {

template <class Api>
class Instance {
  static_assert(declared_interface<Api>, "ward: declare the extension's interface with WARD_INTERFACE first");

 public:
  // Loads `path` into a new domain of `backend` (null: the process backend) and resolves `entry`
  // (a function returning `const Api *`). See ProcessDomain::start for the errors.
  [[nodiscard]] static Result<Instance> load(std::string path, std::string entry, Policy policy = Policy(),
                                             std::string name = {}, Starter backend = nullptr) {
    static_assert(!detail::is_library<Api>, "ward: a WARD_LIBRARY has no entry symbol: use Instance::open");
    return load(Spec{std::move(path), std::move(entry), std::move(policy), std::move(name), {}, backend});
  }
  // Loads the library of free functions `path` (a path, or a file name such as "libzstd.so.1",
  // found the way the dynamic loader would: backend/find_library.h) into a new domain and binds
  // every function WARD_LIBRARY declares by name. A missing symbol is load_failed.
  [[nodiscard]] static Result<Instance> open(std::string path, Policy policy = Policy(), std::string name = {},
                                             Starter backend = nullptr) {
    static_assert(detail::is_library<Api>, "ward: Instance::open is for a WARD_LIBRARY; a table with an entry uses load");
    return load(Spec{std::move(path), {}, std::move(policy), std::move(name), {}, backend});
  }
  // Loads from a Spec the caller filled in (its tables are this interface's, set here); an empty
  // entry loads a WARD_LIBRARY.
  [[nodiscard]] static Result<Instance> load(Spec spec) {
    detail::StructTable structs;
    spec.tables = detail::all_tables<Api>(detail::services_of<Api>{}, detail::objects_of<Api>{}, structs);
    spec.structs = std::move(structs.records);
    spec.struct_labels = std::move(structs.labels);
    auto d = WARD_TRY(start_domain(std::move(spec)));
    return Instance(std::move(d));
  }

  // `n` Ts of sandbox memory in this instance's domain (iface/sandbox.h).
  template <class T>
  [[nodiscard]] Result<Sandboxed<T>> alloc(std::size_t n = 1) {
    return sandbox_alloc<T>(*d_, n);
  }

  // Calls the extension's function M with the C function's own arguments.
  template <auto M, class... A>
  [[nodiscard]] auto call(A&&... a) {
    using D = detail::declared_fn<Api, M, sizeof...(A)>;
    using F = typename D::type;
    typename F::args args{std::forward<A>(a)...};
    return detail::call_fn<F>(*d_, static_cast<std::uint32_t>(D::index), args, std::make_index_sequence<F::arity>{});
  }
  // The same call, spelled like the direct one: `inst->write(block, data, size)`.
  [[nodiscard]] detail::arrow<proxy<Api, Instance>> operator->() { return {proxy<Api, Instance>(this)}; }

  [[nodiscard]] Domain& domain() { return *d_; }
  [[nodiscard]] const Domain& domain() const { return *d_; }

 private:
  explicit Instance(std::unique_ptr<Domain> d) : d_(std::move(d)) {}
  std::unique_ptr<Domain> d_;
};

}  // namespace ward
