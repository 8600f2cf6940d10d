// What every backend shares: grants, names, service dispatch, and the checked accessors of the
// crossing (backend/backend.h, backend/crossing.h).
#include "ward/backend/backend.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "ward/process/domain.h"

namespace ward {

namespace {
thread_local Domain* t_calling = nullptr;
}

Result<std::unique_ptr<Domain>> start_domain(Spec spec) {
  const Starter start = spec.backend ? spec.backend : &ProcessDomain::start;
  return start(std::move(spec));
}

// ---- Domain ---------------------------------------------------------------------------------------
Domain::Domain(Spec spec) : spec_(std::move(spec)), handles_(static_cast<std::size_t>(spec_.policy.handle_quota())) {
  // Logical protection domain: a service table's entry is live only if the policy grants it.
  // Object tables ([deep]) are the extension's own functions: no grants, flagged for the child.
  // Callbacks are not services: the host hands each one over explicitly, so no grant is needed.
  for (std::size_t i = 1; i < spec_.tables.size(); ++i)
    for (std::size_t k = 0; k < spec_.tables[i].fns.size(); ++k)
      spec_.tables[i].fns[k].flags =
          spec_.tables[i].object                                                         ? schema::kFnObject
          : spec_.tables[i].callback || spec_.policy.grants(spec_.tables[i].fn_names[k]) ? schema::kFnGranted
                                                                                         : 0;
  impls_.assign(spec_.tables.size(), nullptr);
}

Domain::~Domain() { detach_sandbox(); }

Result<std::vector<std::byte>> Domain::checkpoint(std::chrono::nanoseconds) {
  return fail(Errc::misuse, "this backend cannot checkpoint an extension");
}

Result<void> Domain::restore(const std::vector<std::byte>&, std::chrono::nanoseconds) {
  return fail(Errc::misuse, "this backend cannot restore a checkpoint");
}

void Domain::attach_sandbox(SandboxHeap::Window w, std::uint64_t size) {
  own_window_ = w;
  sandbox_ = SandboxHeap::create(size);
  sandbox_->attach(this, w, false);
}

void Domain::detach_sandbox() noexcept {
  if (sandbox_) sandbox_->detach(this);
}

Result<void> Domain::take_sandbox(Domain& from, bool copy_bytes) {
  std::shared_ptr<SandboxHeap> heap = from.sandbox_;
  if (!heap && !sandbox_) return {};
  if (!heap || !sandbox_ || heap->size() != sandbox_->size())
    return fail(Errc::misuse, "sandbox memory cannot move between domains whose policies give different sizes");
  heap->attach(this, own_window_, copy_bytes);
  sandbox_ = std::move(heap);
  return {};
}

Domain* Domain::calling() { return t_calling; }

std::string Domain::fn_label(std::uint32_t table, std::uint32_t fn) const {
  if (table >= spec_.tables.size()) return "table#" + std::to_string(table);
  const auto& t = spec_.tables[table];
  return fn < t.fn_names.size() ? t.fn_names[fn] : t.name + "::fn#" + std::to_string(fn);
}

std::vector<std::string> Domain::granted_services() const {
  std::vector<std::string> v;
  for (std::size_t i = 1; i < spec_.tables.size(); ++i)
    for (std::size_t k = 0; k < spec_.tables[i].fns.size(); ++k)
      if (!spec_.tables[i].object && !spec_.tables[i].callback && (spec_.tables[i].fns[k].flags & schema::kFnGranted))
        v.push_back(spec_.tables[i].fn_names[k]);
  return v;
}

void Domain::set_service_impl(std::uint32_t table, const void* impl) {
  if (table < impls_.size()) impls_[table] = impl;
}

Result<void> Domain::note_object(std::uint32_t table, std::uint64_t address) {
  if (objects_.size() >= kMaxObjects && !known_object(table, address))
    return fail(Errc::limit, "the extension returned more than " + std::to_string(kMaxObjects) + " distinct objects");
  objects_.insert({table, address});
  return {};
}

std::uint32_t Domain::object_table(const void* key) const {
  for (std::size_t i = 1; i < spec_.tables.size(); ++i)
    if (spec_.tables[i].object && spec_.tables[i].object_key == key) return static_cast<std::uint32_t>(i);
  return 0;
}

Result<std::uint64_t> Domain::register_callback(const CallbackTarget& t) {
  std::lock_guard<std::mutex> g(callbacks_mu_);
  const auto key = std::make_tuple(t.table, t.fn, t.user, t.handlers);
  if (auto it = callback_tokens_.find(key); it != callback_tokens_.end()) return it->second;
  if (callbacks_.size() >= kMaxCallbacks)
    return fail(Errc::limit, "more than " + std::to_string(kMaxCallbacks) +
                                 " callbacks registered with one domain (a registration lasts until the domain ends)");
  // Random, so the extension cannot guess another registration's token from its own; 0 stays
  // free for "no user data".
  std::uint64_t token = 0;
  while (token == 0 || token == schema::kNull || callbacks_.contains(token)) {
    if (getrandom(&token, sizeof token, 0) != sizeof token)
      return fail(Errc::limit, "no randomness for a callback token: " + std::string(std::strerror(errno)));
  }
  callbacks_.emplace(token, t);
  callback_tokens_.emplace(key, token);
  return token;
}

Result<CallbackTarget> Domain::callback(std::uint64_t token, std::uint32_t table) const {
  std::lock_guard<std::mutex> g(callbacks_mu_);
  const auto it = callbacks_.find(token);
  if (it == callbacks_.end()) return fail(Errc::violation, "user data that is no callback token this domain issued");
  if (it->second.table != table)
    return fail(Errc::violation, "the callback token of another callback type (" + spec_.tables[it->second.table].name + ")");
  return it->second;
}

Result<const schema::Fn*> Domain::service(std::uint32_t table, std::uint32_t fn) const {
  if (table == 0 || table >= spec_.tables.size() || fn >= spec_.tables[table].dispatch.size())
    return fail(Errc::violation, "upcall to an unknown host service (table " + std::to_string(table) + ", function " +
                                     std::to_string(fn) + ")");
  if ((spec_.tables[table].fns[fn].flags & schema::kFnGranted) == 0)
    return fail(Errc::violation, "called host service " + fn_label(table, fn) + ", which this domain was not granted");
  // A callback's implementation is found by the token in its user data, when it is decoded.
  if (!impls_[table] && !spec_.tables[table].callback)
    return fail(Errc::violation, "upcall to host service table " + spec_.tables[table].name + " it was never given");
  return &spec_.tables[table].fns[fn];
}

Result<void> Domain::run_service(Upcall& up) {
  Domain* const outer = t_calling;
  t_calling = this;
  auto r = spec_.tables[up.table()].dispatch[up.fn()](up, impls_[up.table()]);
  t_calling = outer;
  return r;
}

// ---- Call -----------------------------------------------------------------------------------------
std::unexpected<Error> Call::alloc_failed(std::uint64_t n, std::uint64_t off) const {
  if (n > view_.capacity())
    return std::unexpected(decorate(fail(Errc::misuse, "argument of " + std::to_string(n) +
                                                           " bytes is larger than the arena's frame area (" +
                                                           std::to_string(view_.capacity()) +
                                                           " bytes); raise Policy arena_size")
                                        .error()));
  return std::unexpected(decorate(fail(Errc::limit, "arena exhausted: " + std::to_string(n) + " bytes needed, " +
                                                        std::to_string(view_.size - std::min(off, view_.size)) +
                                                        " free at this nesting depth")
                                      .error()));
}

Result<void> Call::check_handle(std::uint64_t h, HandleType type, Rights required, bool from_extension) {
  auto r = d_->handles().check(h, type, required);
  if (r) return {};
  if (!from_extension) {
    Error e = r.error();
    e.kind = Errc::misuse;
    e.detail = "the host passed a " + e.detail;
    return std::unexpected(decorate(std::move(e)));
  }
  return std::unexpected(violation("returned a " + r.error().detail));
}

Error Call::violation(std::string detail) {
  Error e;
  e.kind = Errc::violation;
  e.detail = std::move(detail);
  return decorate(d_->record_failure(std::move(e)));
}

Error Call::decorate(Error e) const {
  e.plugin = d_->name();
  if (e.function.empty()) e.function = d_->fn_label(table_, fn_);
  return e;
}

Result<void> Call::target(std::uint32_t table, std::uint64_t object) {
  if (table >= d_->spec().tables.size() || !d_->spec().tables[table].object || fn_ >= d_->spec().tables[table].fns.size())
    return std::unexpected(decorate(fail(Errc::misuse, "no such object table").error()));
  table_ = table;
  if (!d_->known_object(table, object))
    return std::unexpected(decorate(fail(Errc::misuse, "the object was not returned by this instance of the extension").error()));
  object_ = object;
  return {};
}

// ---- Upcall ---------------------------------------------------------------------------------------
Result<schema::Slot> Upcall::param(std::size_t i) const {
  const std::uint64_t off = frame_ + (i + 1) * sizeof(schema::Slot);
  auto p = WARD_TRY(range(off, sizeof(schema::Slot)));
  schema::Slot s;
  std::memcpy(&s, p, sizeof s);
  return s;
}

Result<const std::byte*> Upcall::range(std::uint64_t off, std::uint64_t n) const {
  auto p = WARD_TRY(writable(off, n));
  return p;
}

Result<std::byte*> Upcall::writable(std::uint64_t off, std::uint64_t n) const {
  if (!view_.contains(off, n))
    return violation("argument at arena offset " + std::to_string(off) + " (" + std::to_string(n) +
                     " bytes) lies outside the arena");
  return view_.base + off;
}

Result<std::string> Upcall::string(std::uint64_t off) const {
  if (off < view_.lo || off >= view_.size) return violation("string pointer outside the arena");
  const auto* p = reinterpret_cast<const char*>(view_.base + off);
  const void* end = std::memchr(p, 0, view_.size - off);
  if (!end) return violation("string without NUL terminator inside the arena");
  // The extension may change the bytes between the scan and the copy: the copy is bounded by the
  // scan, and cut again at its own first NUL, so the host gets a consistent, bounded string.
  std::string s(p, static_cast<std::size_t>(static_cast<const char*>(end) - p));
  if (const auto nul = s.find('\0'); nul != std::string::npos) s.resize(nul);
  return s;
}

Result<std::uint64_t> Upcall::alloc(std::uint64_t n, std::uint64_t align) {
  const std::uint64_t off = schema::align_up(top_, align);
  if (off > view_.size || n > view_.size - off) {
    // Not necessarily the extension's doing (a host service may return more than any arena
    // holds), so not a violation: the arena, a resource, ran out.
    Error e;
    e.kind = Errc::limit;
    e.detail = "host service " + d_.fn_label(table_, fn_) + ": arena exhausted: its result needs " +
               std::to_string(n) + " bytes, " + std::to_string(view_.size - std::min(off, view_.size)) +
               " are free above the extension's frames (raise Policy arena_size)";
    return std::unexpected(std::move(e));
  }
  top_ = off + n;
  return off;
}

Result<void> Upcall::check_handle(std::uint64_t h, HandleType type, Rights required) const {
  if (auto r = d_.handles().check(h, type, required); !r) return violation(r.error().detail);
  return {};
}

Result<CallbackTarget> Upcall::callback(std::uint64_t token) const {
  auto r = d_.callback(token, table_);
  if (!r) return violation(r.error().detail);
  return r;
}

std::unexpected<Error> Upcall::violation(std::string detail) const {
  Error e;
  e.kind = Errc::violation;
  e.detail = "host service " + d_.fn_label(table_, fn_) + ": " + std::move(detail);
  return std::unexpected(std::move(e));
}

}  // namespace ward
