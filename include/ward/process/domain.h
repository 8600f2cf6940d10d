// ward::Domain: one extension instance in its own protection domain (process backend).
//
// The extension runs in a child started from the `ward-helper` executable (exec, so the image is
// clean even in a multithreaded host) under a seccomp allowlist, no-new-privs, a parent-death
// signal and rlimits, all in force before any plugin code runs. The only memory the host and the
// child share is the arena: every argument and result crosses through it, and the host copies
// and validates whatever it reads back.
//
// Most code uses the typed Plugin<Api> (plugin.h) on top of this class; the members under
// "crossing" are what its generated stubs call.
//
// Threads: calls from several host threads into one domain are serialized (one channel, a
// recursive lock held for the whole outermost call); the extension therefore sees a single
// thread, as a plain C library expects. A host service that calls back into the same domain on
// the same thread nests, up to Policy::max_nesting() levels (deeper: Errc::limit), so a
// recursion the extension drives cannot exhaust the host's stack. A host service must not wait
// for another thread that calls this domain: that thread waits for the lock the service's caller
// holds. Such a cycle is detected, not suffered: a thread waiting for the domain gives up with
// Errc::misuse once the lock's holder has spent Policy::timeout() inside host services during
// the wait (time the holder spends inside the extension is bounded by its own call budgets).
// For parallelism, load several domains.
//
// Time: a call's budget (Policy::timeout()) bounds the extension's time, measured exactly:
// the wall time of the call minus the time spent inside host services. Spinning and sleeping
// both count; a nested call the host makes from a host service counts towards the enclosing
// call too, and its own budget is cut to what the enclosing call has left. Every wait is against
// an absolute deadline, so wake-ups the extension causes (it can reach the doorbell words) never
// extend it. When a call fails, tearing the child down waits at most about a second for its exit
// status (a tracer can hold it back); the error is reported then in any case.
//
// Output: the child's stdout and stderr are pipes only the host reads (never the host's own
// descriptors); ward drains them on its own thread and delivers labelled, escaped, capped lines
// to the policy's sink (see policy.h and domain/output.h). Delivery is asynchronous: a line may
// reach the sink after the call that printed it returned, or after the Domain is destroyed.
//
// Failure: the first cause is recorded and never overwritten (a hang that ends in SIGKILL stays
// a hang). From then on every call, in flight or later, fails fast with that cause.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "ward/process/doorbell.h"
#include "ward/process/channel.h"
#include "ward/core/error.h"
#include "ward/core/handle_table.h"
#include "ward/process/policy.h"

namespace ward {

class Domain;
namespace detail {
struct DomainState;
}

// An upcall in progress: the extension called a host service. Handed to the service table's
// generated dispatcher, which reads the arguments through the checked accessors below (every
// offset the extension supplied is validated against the arena before use) and writes results.
class Upcall {
 public:
  // The i-th parameter slot (a copy: reading it twice gives the same value).
  [[nodiscard]] Result<schema::Slot> param(std::size_t i) const;
  // A host pointer to `n` bytes at arena offset `off`, after checking the whole range lies in the
  // frame stack. Copy out of it at once: the extension can change shared memory at any time.
  [[nodiscard]] Result<const std::byte*> range(std::uint64_t off, std::uint64_t n) const;
  [[nodiscard]] Result<std::byte*> writable(std::uint64_t off, std::uint64_t n) const;
  // A NUL-terminated string at `off`, copied into host memory.
  [[nodiscard]] Result<std::string> string(std::uint64_t off) const;
  // Space in the arena for a result the host writes back (a struct or a string). Errc::limit when
  // the arena has no room left above the extension's frames.
  [[nodiscard]] Result<std::uint64_t> alloc(std::uint64_t n, std::uint64_t align = 16);
  void set_return(schema::Slot s);
  // An Errc::violation error naming the service; the dispatcher returns it to kill the domain.
  [[nodiscard]] std::unexpected<Error> violation(std::string detail) const;
  // Checks a handle the extension passed (bad, wrong type, missing right -> violation).
  [[nodiscard]] Result<void> check_handle(std::uint64_t h, HandleType type, Rights required) const;

 private:
  friend class Domain;
  Upcall(Domain& d, const wire::Msg& m, std::uint64_t top) : d_(d), m_(m), top_(top) {}
  Domain& d_;
  wire::Msg m_;
  std::uint64_t top_;
  schema::Slot ret_{0, 0};
};

// What the host knows about one function table: the wire schema plus, for host service tables,
// the dispatchers that run each service. Built by the typed layer from WARD_INTERFACE.
struct TableSpec {
  using Dispatch = Result<void> (*)(Upcall& up, const void* impl);
  std::string name;                    // "device_api"
  std::uint32_t struct_size = 0;       // sizeof the C struct
  std::vector<schema::Fn> fns;
  std::vector<std::string> fn_names;   // "device_api::write"
  std::vector<Dispatch> dispatch;      // host service tables only
};

struct DomainSpec {
  std::string plugin;  // path to the .so (made absolute)
  std::string entry;   // the symbol returning the plugin's function table
  Policy policy;
  std::string name;    // for messages; defaults to the plugin's file name
  std::vector<TableSpec> tables;  // [0] the plugin's table, then host service tables
};

class Domain {
 public:
  // Starts the child, installs the sandbox, loads the plugin and resolves the entry. Errors:
  // load_failed (missing file or symbol, setup failure), crashed/violation/exited (the plugin
  // died while loading, e.g. in a constructor), hung (loading exceeded the load timeout).
  [[nodiscard]] static Result<std::unique_ptr<Domain>> start(DomainSpec spec);
  ~Domain();
  Domain(const Domain&) = delete;
  Domain& operator=(const Domain&) = delete;

  [[nodiscard]] pid_t pid() const;
  [[nodiscard]] const std::string& name() const { return spec_.name; }
  [[nodiscard]] const Policy& policy() const { return spec_.policy; }
  // True until the first failure is recorded.
  [[nodiscard]] bool alive() const;
  // The first cause of failure, if any.
  [[nodiscard]] std::optional<Error> failure() const;
  // Bytes available for frames (the arena minus its boot area): the largest single argument.
  [[nodiscard]] std::uint64_t frame_capacity() const { return size_ - data_off_; }
  // Kills the child from outside (fault injection, shutdown). The next call reports `crashed`.
  void kill();
  // The object tracker: every host object granted to this extension. Released (each object's
  // hook once) when the domain is destroyed, which is what recovery does to a failed domain.
  [[nodiscard]] HandleTable& handles() { return handles_; }
  // The domain whose extension is calling a host service on this thread, or null outside host
  // services. A service uses it to reach the caller's handle table.
  [[nodiscard]] static Domain* calling();
  // The host services this extension may call ("host_api::log", ...): its logical protection
  // domain. Anything else in its service tables is a trap that ends it with a violation.
  [[nodiscard]] std::vector<std::string> granted_services() const;
  // Heartbeat: if no call is in progress, asks the idle extension to answer within `timeout`.
  // Returns true if it answered, false if a call was in progress (nothing checked); an error
  // (hung, or the earlier failure) if it did not answer. Calls in progress have their own timeout.
  [[nodiscard]] Result<bool> heartbeat(std::chrono::nanoseconds timeout);
  // Total time callers of this domain have spent inside its host services (outermost services
  // only: a nested one lies inside its caller). Not charged to any call's budget: this is the
  // host's own time, and what a host watches if an extension can make its services slow.
  [[nodiscard]] std::chrono::nanoseconds host_service_time() const {
    return std::chrono::nanoseconds(service_time_ns());
  }
  // Records `e` as this domain's first cause of failure (a violation found by host code, say)
  // and ends the extension. Returns the recorded cause.
  Error record_failure(Error e) { return fail_with(std::move(e)); }

  // ---- crossing (used by the typed stubs) ------------------------------------------------------
  class Call {
   public:
    Call(Call&&) noexcept;
    Call& operator=(Call&&) = delete;
    ~Call();
    // Reserves frame space. Errors: misuse if `n` exceeds the whole frame area, limit if the
    // arena has no room left at this nesting depth.
    [[nodiscard]] Result<std::uint64_t> alloc(std::uint64_t n, std::uint64_t align = 16);
    [[nodiscard]] std::byte* at(std::uint64_t off) const;
    // Registers the host's implementation of service table `table` (see Domain::set_service_impl).
    void set_service_impl(std::uint32_t table, const void* impl) { d_->set_service_impl(table, impl); }
    // Sends the call and waits, running host services the extension calls meanwhile. Returns the
    // extension's result slot (validate before use).
    [[nodiscard]] Result<schema::Slot> invoke(std::uint64_t frame_off);
    // Checks that [off, off + n) lies in the arena (for offsets the extension returned); on
    // failure the domain is killed and a violation returned.
    [[nodiscard]] Result<const std::byte*> returned_range(std::uint64_t off, std::uint64_t n);
    // Checks a handle the host passes (misuse) or the extension returns (violation: kills).
    [[nodiscard]] Result<void> check_handle(std::uint64_t h, HandleType type, Rights required, bool from_extension);
    // Prefixes plugin and function name to an error raised by the stub.
    [[nodiscard]] Error decorate(Error e) const;

   private:
    friend class Domain;
    Call(Domain* d, std::uint32_t fn, std::unique_lock<std::recursive_mutex> lock);
    Domain* d_;
    std::uint32_t fn_;
    std::uint64_t saved_top_;
    std::unique_lock<std::recursive_mutex> lock_;
  };
  // Takes the channel (re-entrant on the same thread) for a call to function `fn` of the
  // plugin's table. Fails fast if the domain has failed; Errc::limit past max_nesting(); waits
  // for another thread's call to finish, but Errc::misuse when that thread sits in host services
  // for longer than the policy's timeout meanwhile (see "Threads" above).
  [[nodiscard]] Result<Call> begin(std::uint32_t fn);
  // The host object implementing service table `table` (a C struct of function pointers).
  void set_service_impl(std::uint32_t table, const void* impl);
  [[nodiscard]] const TableSpec& table(std::uint32_t id) const { return spec_.tables[id]; }

 private:
  friend class Upcall;
  explicit Domain(DomainSpec spec);
  [[nodiscard]] Result<void> boot();
  [[nodiscard]] Error fail_with(Error e);              // records the first cause, kills the child
  [[nodiscard]] Error current_failure(std::string_view function, bool earlier) const;
  [[nodiscard]] Result<wire::Msg> wait_child(std::string_view function, std::uint64_t budget_ns,
                                             std::uint64_t handed_over);
  [[nodiscard]] Result<void> wait_for_channel(std::unique_lock<std::recursive_mutex>& lock, std::uint32_t fn);
  [[nodiscard]] std::uint64_t service_time_ns() const;
  // Runs the host service. `handed_back` comes in as the instant the host noticed the upcall and
  // goes out as the instant the service finished, just before the reply is rung (from then on
  // the time is the extension's again).
  [[nodiscard]] Result<void> serve_upcall(const wire::Msg& m, std::uint64_t& handed_back);
  [[nodiscard]] std::string fn_label(std::uint32_t table, std::uint32_t fn) const;

  DomainSpec spec_;
  std::shared_ptr<detail::DomainState> st_;
  std::byte* base_ = nullptr;
  std::uint64_t size_ = 0;
  std::uint64_t data_off_ = 0;
  wire::Control* ctl_ = nullptr;
  std::uint32_t seen_ = 0;  // last to_host sequence consumed
  std::uint64_t top_ = 0;   // first free byte of the frame stack (host's view)
  wire::SpinGovernor spin_;  // guarded by mu_, like the channel
  std::recursive_mutex mu_;
  // Threads waiting for the channel sleep here and are woken when an outermost call ends (not a
  // timed lock: every wait is a short, plain condition wait, and sanitizers understand it).
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  std::atomic<unsigned> waiters_{0};
  // Time accounting (guarded by mu_): the extension time charged on this domain so far (every
  // wait for the child adds its wall time; host services add nothing), and the innermost
  // enclosing call's limit in the same units (a nested call cannot outlast its caller's budget).
  std::uint64_t ext_ns_ = 0;
  std::uint64_t ext_limit_ = ~0ull;
  unsigned depth_ = 0;          // calls in progress on the holder's thread (nesting)
  unsigned service_depth_ = 0;  // host services in progress on the holder's thread
  // Read by threads waiting for the channel (no lock): time the holder spent in host services.
  std::atomic<std::uint64_t> service_ns_{0};     // finished outermost services, summed
  std::atomic<std::uint64_t> service_since_{0};  // start of the one in progress, 0 if none
  std::atomic<std::uint64_t> service_label_{0};  // (table << 32 | fn) of that service
  std::vector<const void*> impls_;  // per table: the host's service struct
  HandleTable handles_;
};

}  // namespace ward
