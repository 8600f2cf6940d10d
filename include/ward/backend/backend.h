// ward::Domain: one instance of an extension in its own protection domain, as every backend
// presents it. The typed layers (Instance<Api>, the Supervisor, event handlers bound to
// extensions, handle checks) speak only to this class; a backend (process/domain.h: a sandboxed
// child process) implements it.
//
// A backend provides:
//  - start: bring an instance up from a Spec (Starter below), enforcing its Policy;
//  - the crossing (crossing.h): begin a call (serialized per domain, re-entrant on the thread
//    that holds it, bounded nesting), a memory view the stubs marshal into, invoke, and serving
//    the host services the extension calls meanwhile (through run_service, which checks the
//    grant and dispatches);
//  - failure: the first cause is recorded and never overwritten; from then on every call, in
//    flight or later, fails fast with it; kill ends the instance from outside;
//  - liveness: a heartbeat for idle instances, the time spent in host services.
// Everything else here (names, grants, the handle table, service implementations) is common.
//
// Threads: all members may be called from any thread; the crossing's rules are in crossing.h.
// A Domain is owned by whoever started it (Instance<Api>, or the Supervisor's current instance);
// destroying it ends the extension and releases the host objects granted to it.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ward/backend/crossing.h"
#include "ward/backend/opaque_table.h"
#include "ward/backend/sandbox_heap.h"
#include "ward/core/error.h"
#include "ward/core/handle_table.h"
#include "ward/core/policy.h"
#include "ward/core/schema.h"

namespace ward {

// What the host knows about one function table: the schema plus, for host service tables, the
// dispatchers that run each service. Built by the typed layer from WARD_INTERFACE.
struct TableSpec {
  using Dispatch = Result<void> (*)(Upcall& up, const void* impl);
  std::string name;                    // "device_api"
  std::uint32_t struct_size = 0;       // sizeof the C struct
  std::vector<schema::Fn> fns;
  std::vector<std::string> fn_names;   // "device_api::write"
  std::vector<Dispatch> dispatch;      // host service tables only
  std::vector<std::string> symbols;    // a library's table: the symbol bound to each function
  // [deep] An object table: a descriptor type's functions, called through objects the extension
  // returned (iface/object.h); `object_key` names the type (detail::type_key).
  bool object = false;
  const void* object_key = nullptr;
  bool callback = false;               // a callback type or handler struct (iface/callback.h,
                                       // handlers.h): found by token, no grant
};

// A callback the host registered with a domain (iface/callback.h): the callback type's table,
// the host's function (type-erased; the table's dispatcher casts it back) and its user data.
// A handler struct (iface/handlers.h) registers the host's struct instead of one function.
struct CallbackTarget {
  std::uint32_t table = 0;
  void (*fn)() = nullptr;
  void* user = nullptr;
  const void* handlers = nullptr;
};

class Domain;
struct Spec;
// Brings up one instance; a backend's entry point (ProcessDomain::start is the default).
using Starter = Result<std::unique_ptr<Domain>> (*)(Spec spec);

// What to start: the extension, its entry, its policy and its tables.
struct Spec {
  std::string plugin;  // path to the extension (a shared object)
  std::string entry;   // the symbol returning the plugin's function table; empty for a library
                       // of free functions (WARD_LIBRARY), whose table 0 names each symbol
  Policy policy;
  std::string name;    // for messages; defaults to the plugin's file name
  std::vector<TableSpec> tables;  // [0] the plugin's table, then host service tables, then
                                  // object tables ([deep])
  Starter backend = nullptr;      // null: the process backend
  // [deep] The described structs deep values follow (ids as in schema::Param::table), and their
  // names for messages: [id] = {"T", "T::field"...}.
  std::vector<schema::Struct> structs;
  std::vector<std::vector<std::string>> struct_labels;
  // Where the extension must see its window (0: anywhere). The Supervisor asks a restart for the
  // failed instance's address, so sandbox memory keeps its addresses; a backend that cannot
  // honour it fails to load.
  std::uint64_t arena_at = 0;
  // Bytes of checkpointable heap (recovery/checkpoint.h; 0: the extension is not
  // checkpointable). A backend that cannot checkpoint fails Domain::checkpoint with misuse.
  std::uint64_t checkpoint_bytes = 0;
};

// Starts `spec` on the backend it names.
[[nodiscard]] Result<std::unique_ptr<Domain>> start_domain(Spec spec);

class Domain {
 public:
  virtual ~Domain();
  Domain(const Domain&) = delete;
  Domain& operator=(const Domain&) = delete;

  [[nodiscard]] const std::string& name() const { return spec_.name; }
  [[nodiscard]] const Policy& policy() const { return spec_.policy; }
  // The object tracker: every host object granted to this extension. Released (each object's
  // hook once) when the domain is destroyed, which is what recovery does to a failed domain.
  [[nodiscard]] HandleTable& handles() { return handles_; }
  // The tokens standing for the extension's own pointers (ward::opaque; opaque_table.h). They
  // end with the domain; a Supervisor carries them over to the next instance.
  [[nodiscard]] OpaqueTable& opaques() { return opaques_; }
  // The domain whose extension is calling a host service on this thread, or null outside host
  // services. A service uses it to reach the caller's handle table.
  [[nodiscard]] static Domain* calling();
  // The host services this extension may call ("host_api::log", ...): its logical protection
  // domain. Anything else in its service tables is a trap that ends it with a violation.
  [[nodiscard]] std::vector<std::string> granted_services() const;
  [[nodiscard]] const TableSpec& table(std::uint32_t id) const { return spec_.tables[id]; }
  // "device_api::write", or a description of an id that names no function.
  [[nodiscard]] std::string fn_label(std::uint32_t table, std::uint32_t fn) const;
  // The host object implementing service table `table` (a C struct of function pointers).
  void set_service_impl(std::uint32_t table, const void* impl);
  // [deep] Objects (descriptors) the extension returned, by object table: the only addresses an
  // object call may name. Called while holding a Call (serialized like calls). At most
  // kMaxObjects distinct ones per domain (an extension returning a new one per call is a leak).
  static constexpr std::size_t kMaxObjects = 1u << 16;
  [[nodiscard]] Result<void> note_object(std::uint32_t table, std::uint64_t address);
  [[nodiscard]] bool known_object(std::uint32_t table, std::uint64_t address) const {
    return objects_.count({table, address}) != 0;
  }
  [[nodiscard]] std::uint32_t object_table(const void* key) const;

  // Callbacks (iface/callback.h): registrations live until the domain ends, at most this many.
  static constexpr std::size_t kMaxCallbacks = 4096;
  // The token the extension receives as user data for `t`: unguessable, never 0, the same for
  // the same registration. Errc::limit past kMaxCallbacks.
  [[nodiscard]] Result<std::uint64_t> register_callback(const CallbackTarget& t);
  // The registration behind `token` if it was issued for callback table `table`; otherwise an
  // Errc::violation error (the extension forged or misused the token).
  [[nodiscard]] Result<CallbackTarget> callback(std::uint64_t token, std::uint32_t table) const;

  // True until the first failure is recorded.
  [[nodiscard]] virtual bool alive() const = 0;
  // The first cause of failure, if any.
  [[nodiscard]] virtual std::optional<Error> failure() const = 0;
  // Ends the extension from outside (fault injection, shutdown). The next call reports `crashed`.
  virtual void kill() = 0;
  // If no call is in progress, asks the idle extension to answer within `timeout`. True if it
  // answered, false if a call was in progress (nothing checked); an error (hung, or the earlier
  // failure) if it did not answer.
  [[nodiscard]] virtual Result<bool> heartbeat(std::chrono::nanoseconds timeout) = 0;
  // Total time callers have spent inside this domain's host services (outermost only).
  [[nodiscard]] virtual std::chrono::nanoseconds host_service_time() const = 0;
  // Bytes available for frames: the largest single argument.
  [[nodiscard]] virtual std::uint64_t frame_capacity() const = 0;
  // Records `e` as the first cause of failure (a violation found by host code, say) and ends
  // the extension. Returns the recorded cause.
  virtual Error record_failure(Error e) = 0;

  // Checkpoints (recovery/checkpoint.h). With no call in progress, copies the instance's state
  // (its heap and writable data) into host memory, within `timeout`; restore() writes such a
  // copy into a freshly started instance of the same extension, before its first call. Errors:
  // misuse when the domain was not started checkpointable (Spec::checkpoint_bytes) or the state
  // holds what a checkpoint cannot capture (the text says what), or a call is in progress;
  // limit when the copy does not fit; load_failed when a copy cannot be restored into this
  // instance (its layout differs); a failure of the instance (hung, crashed), which ends it.
  [[nodiscard]] virtual Result<std::vector<std::byte>> checkpoint(std::chrono::nanoseconds timeout);
  [[nodiscard]] virtual Result<void> restore(const std::vector<std::byte>& state, std::chrono::nanoseconds timeout);

  // Sandbox memory (sandbox_heap.h), or null when the policy gives none. Under a Supervisor the
  // same heap moves from instance to instance (take_sandbox).
  [[nodiscard]] const std::shared_ptr<SandboxHeap>& sandbox() const { return sandbox_; }
  // Where the extension sees the start of its window, as it reported it (untrusted: only ever
  // handed back to the extension, or to its restart as Spec::arena_at); 0 if not known.
  [[nodiscard]] virtual std::uint64_t extension_base() const { return 0; }
  // This domain holds `from`'s sandbox heap from now on, in its own region: with copy_bytes the
  // heap's bytes are copied in first (a restart carrying the failed instance's memory over).
  // `from` may be this domain (taking its heap back into its own region). Errors: misuse if one
  // domain has sandbox memory and the other none, or their sizes differ.
  [[nodiscard]] Result<void> take_sandbox(Domain& from, bool copy_bytes);

  // Takes the domain (re-entrant on the same thread) for a call to function `fn` of the
  // plugin's table. Fails fast if the domain has failed; Errc::limit past Policy::max_nesting().
  [[nodiscard]] virtual Result<Call> begin(std::uint32_t fn) = 0;

 protected:
  explicit Domain(Spec spec);
  // For backends: a Call over `view` whose frames stack on `*top`.
  [[nodiscard]] Call make_call(std::uint32_t fn, MemoryView view, std::uint64_t* top) { return Call(this, fn, view, top); }
  // The schema of host service `fn` of table `table`, after checking it exists, is granted and
  // was given an implementation (each failing check: a violation the backend reports).
  [[nodiscard]] Result<const schema::Fn*> service(std::uint32_t table, std::uint32_t fn) const;
  // Runs the host service `up` names (checked by service() first). Sets calling() meanwhile.
  [[nodiscard]] Result<void> run_service(Upcall& up);
  [[nodiscard]] const Spec& spec() const { return spec_; }
  // For backends: the domain's sandbox region (a heap of `w`'s size, created here) is in place;
  // detach_sandbox before that memory goes away.
  void attach_sandbox(SandboxHeap::Window w, std::uint64_t size);
  void detach_sandbox() noexcept;

 private:
  friend class Call;
  // Sends the call and waits for its result (crossing.h, Call::invoke).
  [[nodiscard]] virtual Result<schema::Slot> invoke(Call& c, std::uint64_t frame_off) = 0;
  // The call ends: the domain is free for other threads once the outermost call has ended.
  virtual void end(Call& c) noexcept = 0;

  Spec spec_;
  HandleTable handles_;
  OpaqueTable opaques_;
  std::vector<const void*> impls_;  // per table: the host's service struct
  std::set<std::pair<std::uint32_t, std::uint64_t>> objects_;  // [deep] (table, address)
  mutable std::mutex callbacks_mu_;
  std::unordered_map<std::uint64_t, CallbackTarget> callbacks_;  // token -> registration
  std::map<std::tuple<std::uint32_t, void (*)(), void*, const void*>, std::uint64_t> callback_tokens_;  // and back
  std::shared_ptr<SandboxHeap> sandbox_;
  SandboxHeap::Window own_window_{};  // this domain's own region, whichever heap lives in it
};

inline Result<schema::Slot> Call::invoke(std::uint64_t frame_off) { return d_->invoke(*this, frame_off); }

inline Call::Call(Call&& o) noexcept
    : d_(std::exchange(o.d_, nullptr)), fn_(o.fn_), view_(o.view_), top_(o.top_), saved_top_(o.saved_top_),
      table_(o.table_), object_(o.object_) {}

inline Call::~Call() {
  if (!d_) return;
  *top_ = saved_top_;
  d_->end(*this);
}

inline Result<std::optional<std::uint64_t>> Call::in_sandbox(const void* p, std::uint64_t n) const {
  const auto& heap = d_->sandbox();
  if (!heap) return std::nullopt;
  bool inside = false;
  const auto off = heap->locate(p, n, inside);
  if (!inside) return std::nullopt;
  if (!off)
    return std::unexpected(decorate(fail(Errc::misuse, "a pointer into sandbox memory that is not inside one live "
                                                       "allocation (freed, or the range runs past its end)")
                                        .error()));
  return heap->view_off(*off);
}

inline void Call::set_service_impl(std::uint32_t table, const void* impl) { d_->set_service_impl(table, impl); }

inline Result<void> Call::note_object(std::uint32_t table, std::uint64_t address) {
  if (auto r = d_->note_object(table, address); !r) return std::unexpected(decorate(r.error()));
  return {};
}
inline std::uint32_t Call::object_table(const void* key) const { return d_->object_table(key); }
inline const std::vector<std::vector<std::string>>& Call::struct_labels() const { return d_->spec().struct_labels; }
inline OpaqueTable& Call::opaques() { return d_->opaques(); }
inline OpaqueTable& Upcall::opaques() const { return d_.opaques(); }
inline Result<std::uint64_t> Call::register_callback(const CallbackTarget& t) {
  auto r = d_->register_callback(t);
  if (!r) return std::unexpected(decorate(r.error()));
  return r;
}

}  // namespace ward
