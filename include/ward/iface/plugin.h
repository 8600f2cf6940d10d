// Plugin<Api>: a plain-C plugin loaded into a process domain and called through stubs generated
// from its WARD_INTERFACE declaration.
//
//   auto dev = ward::Plugin<device_api>::load("libdevice.so", "device_entry", policy);
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

#include "ward/process/domain.h"
#include "ward/iface/interface.h"
#include "ward/process/policy.h"
#include "ward/core/tainted.h"

namespace ward {
namespace detail {

template <class F>
struct host_result {
  using R = typename F::ret;
  using type = std::conditional_t<
      std::is_void_v<R>, void,
      typename std::conditional_t<std::is_pointer_v<R>, std::type_identity<Tainted<std::optional<std::string>>>,
                                  std::type_identity<Tainted<std::conditional_t<std::is_void_v<R>, int, R>>>>::type>;
};

// A scalar the extension passed in a register; false if it is an enum outside its declared
// range. A bool takes its low byte, normalised (any non-zero byte is true).
template <class T>
[[nodiscard]] bool from_bits(std::uint64_t bits, T& out) {
  std::memcpy(&out, &bits, sizeof(T));
  return sanitize(out);
}

template <class T>
std::uint64_t to_bits(const T& v) {
  std::uint64_t bits = 0;
  if constexpr (std::is_same_v<T, bool>) bits = v ? 1 : 0;
  else std::memcpy(&bits, &v, sizeof(T));
  return bits;
}

// Element count named by a count parameter; negative counts are an error.
template <class T>
bool count_of(const T& v, std::uint64_t& out) {
  if constexpr (std::is_signed_v<T>) {
    if (v < 0) return false;
  }
  out = static_cast<std::uint64_t>(v);
  return true;
}

inline bool mul_overflows(std::uint64_t a, std::uint64_t b, std::uint64_t& out) { return __builtin_mul_overflow(a, b, &out); }

struct CopyBack {
  void* host = nullptr;
  std::uint64_t off = 0;
  std::uint64_t bytes = 0;
  // Checks (and normalises) the host's copy of `bytes` bytes of elements; null when the element
  // type has no invalid bit patterns.
  bool (*check)(void* copy, std::uint64_t bytes) = nullptr;
};

template <class E>
bool check_elements(void* copy, std::uint64_t bytes) {
  return sanitize_all(static_cast<E*>(copy), bytes / sizeof(E));
}
template <class E>
constexpr auto checker_for() -> bool (*)(void*, std::uint64_t) {
  if constexpr (needs_check<E>) return &check_elements<E>;
  else return nullptr;
}

inline constexpr std::string_view kOutOfRange = ": an enum value outside its declared range (ward::enum_range)";

// ---- host -> extension ----------------------------------------------------------------------
template <class F, std::size_t I, class Args>
Result<void> marshal(Domain::Call& c, schema::Slot* slots, Args& args, CopyBack& back) {
  using P = std::tuple_element_t<I, typename F::args>;
  constexpr schema::Param d = param_desc<F, I>();
  schema::Slot& s = slots[I + 1];
  const P& v = std::get<I>(args);
  auto misuse = [&](std::string what) {
    return std::unexpected(c.decorate(fail(Errc::misuse, "parameter " + std::to_string(I) + ": " + what).error()));
  };
  if constexpr (d.kind == schema::Kind::record) {
    auto off = c.alloc(sizeof(P), alignof(P) < 16 ? 16 : alignof(P));
    if (!off) return std::unexpected(off.error());
    std::memcpy(c.at(*off), &v, sizeof(P));
    s = {*off, sizeof(P)};
  } else if constexpr (d.kind == schema::Kind::cstring) {
    if (!v) {
      if (!d.nullable) return misuse("null string (declare ward::nullable to allow it)");
      s = {schema::kNull, 0};
    } else {
      const std::size_t len = std::strlen(v);
      auto off = c.alloc(len + 1, 1);
      if (!off) return std::unexpected(off.error());
      std::memcpy(c.at(*off), v, len + 1);
      s = {*off, len};
    }
  } else if constexpr (d.kind == schema::Kind::services) {
    if (!v) {
      s = {schema::kNull, 0};
    } else {
      c.set_service_impl(d.table, v);
      s = {d.table, 0};
    }
  } else if constexpr (d.kind == schema::Kind::buffer) {
    std::uint64_t count = 1;
    if constexpr (d.count_arg != 0xff) {
      if (!count_of(std::get<d.count_arg>(args), count)) return misuse("negative element count");
    }
    std::uint64_t bytes = 0;
    if (mul_overflows(count, d.size, bytes)) return misuse("element count overflows");
    if (!v) {
      if (!d.nullable && bytes != 0) return misuse("null buffer with a non-zero size (declare ward::nullable to allow it)");
      s = {schema::kNull, bytes};
      return {};
    }
    auto off = c.alloc(bytes);
    if (!off) return std::unexpected(off.error());
    if constexpr (d.dir == schema::Dir::out) std::memset(c.at(*off), 0, bytes);
    else std::memcpy(c.at(*off), static_cast<const void*>(v), bytes);
    if constexpr (d.dir != schema::Dir::in) back = {static_cast<void*>(v), *off, bytes, checker_for<element_t<P>>()};
    s = {*off, bytes};
  } else {
    constexpr ParamAnn pa = ann_for(F::anns, I);
    if constexpr (pa.count == 1 && pa.ann.k == Ann::K::handle) {
      if (auto ok = c.check_handle(static_cast<std::uint64_t>(v), pa.ann.type, pa.ann.rights, false); !ok)
        return std::unexpected(ok.error());
    }
    s = {to_bits(v), 0};
  }
  return {};
}

// A value the extension returned (or left in out data) that no host object may hold.
inline std::unexpected<Error> refused(Domain::Call& c, const std::string& what) {
  return std::unexpected(c.decorate(fail(Errc::bad_data, what + std::string(kOutOfRange)).error()));
}

template <class F>
Result<typename host_result<F>::type> decode_return(Domain::Call& c, const schema::Slot& r) {
  using R = typename F::ret;
  if constexpr (std::is_void_v<R>) {
    return {};
  } else if constexpr (std::is_pointer_v<R>) {
    if (r.a == schema::kNull) return Tainted<std::optional<std::string>>(std::nullopt);
    if (r.b >= (1ull << 40)) {
      auto bad = c.returned_range(~0ull, 1);  // records the violation
      return std::unexpected(bad.error());
    }
    auto p = c.returned_range(r.a, r.b + 1);
    if (!p) return std::unexpected(p.error());
    std::string s(reinterpret_cast<const char*>(*p), r.b + 1);  // copy, then check the copy
    const auto nul = s.find('\0');
    if (nul == std::string::npos) {
      auto bad = c.returned_range(~0ull, 1);
      return std::unexpected(bad.error());
    }
    s.resize(nul);
    return Tainted<std::optional<std::string>>(std::move(s));
  } else if constexpr (is_scalar_arg<R>) {
    if constexpr (F::returned_handle.k == Ann::K::returns_handle) {
      if (auto ok = c.check_handle(r.a, F::returned_handle.type, F::returned_handle.rights, true); !ok)
        return std::unexpected(ok.error());
    }
    R v;
    if (!from_bits(r.a, v)) return refused(c, "result");
    return Tainted<R>(v);
  } else {
    auto p = c.returned_range(r.a, sizeof(R));
    if (!p) return std::unexpected(p.error());
    R v;
    std::memcpy(&v, *p, sizeof(R));
    if (!sanitize(v)) return refused(c, "result");
    return Tainted<R>(v);
  }
}

template <class F, class Args, std::size_t... I>
Result<typename host_result<F>::type> call_fn(Domain& d, std::uint32_t index, Args& args, std::index_sequence<I...>) {
  auto c = d.begin(index);
  if (!c) return std::unexpected(c.error());
  constexpr std::size_t n = F::arity;
  auto frame = c->alloc(sizeof(schema::Slot) * (n + 1));
  if (!frame) return std::unexpected(frame.error());
  auto* slots = reinterpret_cast<schema::Slot*>(c->at(*frame));
  (void)slots;  // unused by functions without parameters
  std::array<CopyBack, n + 1> back{};
  Result<void> ok{};
  ((ok ? (ok = marshal<F, I>(*c, slots, args, back[I]), 0) : 0), ...);
  if (!ok) return std::unexpected(ok.error());
  auto r = c->invoke(*frame);
  if (!r) return std::unexpected(r.error());
  auto result = decode_return<F>(*c, *r);
  if (!result) return result;
  // Only a completed call whose out data is valid changes the host's objects. Data to check is
  // copied out of the arena once (the extension may still be writing it), checked in that copy,
  // and written to the host's objects only when every buffer passed.
  std::array<std::vector<std::byte>, n + 1> checked;
  for (std::size_t i = 0; i < back.size(); ++i) {
    const CopyBack& b = back[i];
    if (!b.host || !b.bytes || !b.check) continue;
    checked[i].assign(c->at(b.off), c->at(b.off) + b.bytes);
    if (!b.check(checked[i].data(), b.bytes)) return refused(*c, "parameter " + std::to_string(i));
  }
  for (std::size_t i = 0; i < back.size(); ++i) {
    const CopyBack& b = back[i];
    if (b.host && b.bytes) std::memcpy(b.host, b.check ? checked[i].data() : c->at(b.off), b.bytes);
  }
  return result;
}

// ---- extension -> host (service dispatch) -----------------------------------------------------
template <class F, std::size_t I>
Result<void> decode_scalar(Upcall& up, auto& store) {
  constexpr schema::Param d = param_desc<F, I>();
  if constexpr (d.kind != schema::Kind::record && d.kind != schema::Kind::cstring && d.kind != schema::Kind::buffer &&
                d.kind != schema::Kind::services) {
    auto s = up.param(I);
    if (!s) return std::unexpected(s.error());
    constexpr ParamAnn pa = ann_for(F::anns, I);
    if constexpr (pa.count == 1 && pa.ann.k == Ann::K::handle) {
      if (auto ok = up.check_handle(s->a, pa.ann.type, pa.ann.rights); !ok) return ok;
    }
    if (!from_bits(s->a, std::get<I>(store)))
      return up.violation("parameter " + std::to_string(I) + std::string(kOutOfRange));
  }
  return {};
}

template <class F, std::size_t I>
Result<void> decode_pointer(Upcall& up, auto& store, auto& ptrs, CopyBack& back) {
  using P = std::tuple_element_t<I, typename F::args>;
  constexpr schema::Param d = param_desc<F, I>();
  if constexpr (d.kind == schema::Kind::record) {
    auto s = up.param(I);
    if (!s) return std::unexpected(s.error());
    auto p = up.range(s->a, sizeof(P));
    if (!p) return std::unexpected(p.error());
    std::memcpy(&std::get<I>(store), *p, sizeof(P));
    if (!sanitize(std::get<I>(store))) return up.violation("parameter " + std::to_string(I) + std::string(kOutOfRange));
  } else if constexpr (d.kind == schema::Kind::cstring) {
    auto s = up.param(I);
    if (!s) return std::unexpected(s.error());
    if (s->a == schema::kNull) {
      if (!d.nullable) return up.violation("null string for parameter " + std::to_string(I));
      std::get<I>(ptrs) = nullptr;
    } else {
      auto str = up.string(s->a);
      if (!str) return std::unexpected(str.error());
      std::get<I>(store) = std::move(*str);
      std::get<I>(ptrs) = std::get<I>(store).c_str();
    }
  } else if constexpr (d.kind == schema::Kind::buffer) {
    using E = element_t<P>;
    auto s = up.param(I);
    if (!s) return std::unexpected(s.error());
    std::uint64_t count = 1;
    if constexpr (d.count_arg != 0xff) {
      if (!count_of(std::get<d.count_arg>(store), count))
        return up.violation("negative element count for parameter " + std::to_string(I));
    }
    std::uint64_t bytes = 0;
    if (mul_overflows(count, sizeof(E), bytes)) return up.violation("element count overflows");
    if (s->a == schema::kNull) {
      if (!d.nullable && bytes != 0) return up.violation("null buffer for parameter " + std::to_string(I));
      std::get<I>(ptrs) = nullptr;
      return {};
    }
    auto p = up.writable(s->a, bytes);
    if (!p) return std::unexpected(p.error());
    auto& vec = std::get<I>(store);
    vec.resize(count ? count : 1);
    if constexpr (d.dir != schema::Dir::out) {
      std::memcpy(vec.data(), *p, bytes);
      if (!sanitize_all(vec.data(), count))
        return up.violation("parameter " + std::to_string(I) + std::string(kOutOfRange));
    }
    if constexpr (d.dir != schema::Dir::in) back = {vec.data(), s->a, bytes};
    std::get<I>(ptrs) = reinterpret_cast<std::tuple_element_t<I, typename F::args>>(vec.data());
  } else if constexpr (d.kind == schema::Kind::services) {
    std::get<I>(ptrs) = nullptr;  // services are not passed back into the host
  }
  return {};
}

// A buffer's elements as the host keeps them: std::vector<bool> packs bits and has no data(), so
// a bool is kept in a struct of one bool (same size and layout) instead.
struct bool_slot {
  bool v;
};
template <class E>
using slot_t = std::conditional_t<std::is_same_v<E, bool>, bool_slot, E>;

template <class F, std::size_t I>
using store_t = std::conditional_t<
    param_desc<F, I>().kind == schema::Kind::cstring, std::string,
    std::conditional_t<param_desc<F, I>().kind == schema::Kind::buffer,
                       std::vector<slot_t<element_t<std::tuple_element_t<I, typename F::args>>>>,
                       std::remove_cv_t<std::tuple_element_t<I, typename F::args>>>>;

template <class F, std::size_t I>
decltype(auto) c_arg(auto& store, auto& ptrs) {
  constexpr schema::Kind k = param_desc<F, I>().kind;
  if constexpr (k == schema::Kind::cstring || k == schema::Kind::buffer || k == schema::Kind::services) return std::get<I>(ptrs);
  else return std::get<I>(store);
}

template <class F, std::size_t... I>
Result<void> dispatch_impl(Upcall& up, const void* impl, std::index_sequence<I...>) {
  using Api = typename F::api;
  const auto* table = static_cast<const Api*>(impl);
  auto fn = table->*F::member;
  if (!fn) return up.violation("called a service the host did not provide");
  std::tuple<store_t<F, I>...> store{};
  std::tuple<std::tuple_element_t<I, typename F::args>...> ptrs{};
  std::array<CopyBack, F::arity + 1> back{};
  Result<void> ok{};
  ((ok ? (ok = decode_scalar<F, I>(up, store), 0) : 0), ...);
  ((ok ? (ok = decode_pointer<F, I>(up, store, ptrs, back[I]), 0) : 0), ...);
  if (!ok) return ok;
  using R = typename F::ret;
  schema::Slot ret{0, 0};
  if constexpr (std::is_void_v<R>) {
    fn(c_arg<F, I>(store, ptrs)...);
  } else {
    R r = fn(c_arg<F, I>(store, ptrs)...);
    if constexpr (std::is_pointer_v<R>) {
      if (!r) {
        ret = {schema::kNull, 0};
      } else {
        const std::size_t len = std::strlen(r);
        auto off = up.alloc(len + 1, 1);
        if (!off) return std::unexpected(off.error());
        auto p = up.writable(*off, len + 1);
        if (!p) return std::unexpected(p.error());
        std::memcpy(*p, r, len + 1);
        ret = {*off, len};
      }
    } else if constexpr (is_scalar_arg<R>) {
      ret = {to_bits(r), 0};
    } else {
      auto off = up.alloc(sizeof(R));
      if (!off) return std::unexpected(off.error());
      auto p = up.writable(*off, sizeof(R));
      if (!p) return std::unexpected(p.error());
      std::memcpy(*p, &r, sizeof(R));
      ret = {*off, sizeof(R)};
    }
  }
  for (const CopyBack& b : back) {
    if (!b.host || !b.bytes) continue;
    auto p = up.writable(b.off, b.bytes);
    if (!p) return std::unexpected(p.error());
    std::memcpy(*p, b.host, b.bytes);
  }
  up.set_return(ret);
  return {};
}

template <class F>
Result<void> dispatch(Upcall& up, const void* impl) {
  return dispatch_impl<F>(up, impl, std::make_index_sequence<F::arity>{});
}

template <class Api, bool Services>
TableSpec table_spec() {
  TableSpec t;
  t.name = std::string(interface_traits<Api>::name);
  t.struct_size = sizeof(Api);
  std::apply(
      [&](const auto&... fn) {
        (
            [&](const auto& f) {
              using F = std::remove_cvref_t<decltype(f)>;
              t.fns.push_back(fn_desc<F>(member_offset<F::member>()));
              t.fn_names.emplace_back(f.name);
              if constexpr (Services) {
                static_assert([]<std::size_t... I>(std::index_sequence<I...>) {
                  return ((param_desc<F, I>().kind != schema::Kind::services) && ...);
                }(std::make_index_sequence<F::arity>{}), "ward: host services cannot take service tables themselves");
                t.dispatch.push_back(&dispatch<F>);
              }
            }(fn),
            ...);
      },
      interface_traits<Api>::fns);
  return t;
}

template <class Api, class... S>
std::vector<TableSpec> all_tables(type_list<S...>) {
  std::vector<TableSpec> v;
  v.push_back(table_spec<Api, false>());
  (v.push_back(table_spec<S, true>()), ...);
  return v;
}

}  // namespace detail

template <class Api>
class Plugin {
  static_assert(declared_interface<Api>, "ward: declare the plugin's interface with WARD_INTERFACE first");

 public:
  // Loads `path` into a new process domain and resolves `entry` (a function returning
  // `const Api *`). See Domain::start for the errors.
  [[nodiscard]] static Result<Plugin> load(std::string path, std::string entry, Policy policy = Policy(),
                                           std::string name = {}) {
    DomainSpec spec;
    spec.plugin = std::move(path);
    spec.entry = std::move(entry);
    spec.policy = std::move(policy);
    spec.name = std::move(name);
    spec.tables = detail::all_tables<Api>(detail::services_of<Api>{});
    auto d = Domain::start(std::move(spec));
    if (!d) return std::unexpected(d.error());
    return Plugin(std::move(*d));
  }

  // Calls the plugin function M with the C function's own arguments.
  template <auto M, class... A>
  [[nodiscard]] auto call(A&&... a) {
    using D = detail::declared_fn<Api, M, sizeof...(A)>;
    using F = typename D::type;
    typename F::args args{std::forward<A>(a)...};
    return detail::call_fn<F>(*d_, static_cast<std::uint32_t>(D::index), args, std::make_index_sequence<F::arity>{});
  }

  [[nodiscard]] Domain& domain() { return *d_; }
  [[nodiscard]] const Domain& domain() const { return *d_; }

 private:
  explicit Plugin(std::unique_ptr<Domain> d) : d_(std::move(d)) {}
  std::unique_ptr<Domain> d_;
};

}  // namespace ward
