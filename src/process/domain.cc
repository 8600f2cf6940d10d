#include "ward/process/domain.h"

#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <utility>

#include "process/output.h"
#include "process/fast_clock.h"
#include "process/reaper.h"
#include "process/seccomp.h"

extern char** environ;

namespace ward {
namespace w = wire;
namespace sc = schema;

namespace {

// Longest a failing call or a destructor waits for the killed child's exit status.
constexpr int kReapWaitMs = 1000;

constexpr std::uint64_t kFilterReserve = 2048 * sizeof(sock_filter);  // ours are a few hundred

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Where ward-helper and libward-audit.so live: $WARD_HELPER_DIR, the build directory CMake
// recorded, then the directory of the running executable.
Result<std::string> helper_dir() {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("WARD_HELPER_DIR"); env && *env) candidates.emplace_back(env);
#ifdef WARD_DEFAULT_HELPER_DIR
  candidates.emplace_back(WARD_DEFAULT_HELPER_DIR);
#endif
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(self.parent_path().string());
  for (const auto& dir : candidates) {
    if (access((dir + "/ward-helper").c_str(), X_OK) == 0 && access((dir + "/libward-audit.so").c_str(), R_OK) == 0)
      return dir;
  }
  return fail(Errc::load_failed, "cannot find ward-helper and libward-audit.so (looked in $WARD_HELPER_DIR, "
                                 "the build directory and next to the executable)");
}

}  // namespace

// ---- Upcall ---------------------------------------------------------------------------------------
Result<sc::Slot> Upcall::param(std::size_t i) const {
  const std::uint64_t off = m_.frame_off + (i + 1) * sizeof(sc::Slot);
  auto p = range(off, sizeof(sc::Slot));
  if (!p) return std::unexpected(p.error());
  sc::Slot s;
  std::memcpy(&s, *p, sizeof s);
  return s;
}

Result<const std::byte*> Upcall::range(std::uint64_t off, std::uint64_t n) const {
  auto p = writable(off, n);
  if (!p) return std::unexpected(p.error());
  return *p;
}

Result<std::byte*> Upcall::writable(std::uint64_t off, std::uint64_t n) const {
  if (off < d_.data_off_ || off > d_.size_ || n > d_.size_ - off)
    return violation("argument at arena offset " + std::to_string(off) + " (" + std::to_string(n) +
                     " bytes) lies outside the arena");
  return d_.base_ + off;
}

Result<std::string> Upcall::string(std::uint64_t off) const {
  if (off < d_.data_off_ || off >= d_.size_) return violation("string pointer outside the arena");
  const auto* p = reinterpret_cast<const char*>(d_.base_ + off);
  const void* end = std::memchr(p, 0, d_.size_ - off);
  if (!end) return violation("string without NUL terminator inside the arena");
  // The extension may change the bytes between the scan and the copy: the copy is bounded by the
  // scan, and cut again at its own first NUL, so the host gets a consistent, bounded string.
  std::string s(p, static_cast<std::size_t>(static_cast<const char*>(end) - p));
  if (const auto nul = s.find('\0'); nul != std::string::npos) s.resize(nul);
  return s;
}

Result<std::uint64_t> Upcall::alloc(std::uint64_t n, std::uint64_t align) {
  const std::uint64_t off = w::align_up(top_, align);
  if (off > d_.size_ || n > d_.size_ - off) {
    // Not necessarily the extension's doing (a host service may return more than any arena
    // holds), so not a violation: the arena, a resource, ran out.
    Error e;
    e.kind = Errc::limit;
    e.detail = "host service " + d_.fn_label(m_.table, m_.fn) + ": arena exhausted: its result needs " +
               std::to_string(n) + " bytes, " + std::to_string(d_.size_ - std::min(off, d_.size_)) +
               " are free above the extension's frames (raise Policy arena_size)";
    return std::unexpected(std::move(e));
  }
  top_ = off + n;
  return off;
}

void Upcall::set_return(sc::Slot s) { ret_ = s; }

Result<void> Upcall::check_handle(std::uint64_t h, HandleType type, Rights required) const {
  if (auto r = d_.handles_.check(h, type, required); !r) return violation(r.error().detail);
  return {};
}

std::unexpected<Error> Upcall::violation(std::string detail) const {
  Error e;
  e.kind = Errc::violation;
  e.detail = "host service " + d_.fn_label(m_.table, m_.fn) + ": " + std::move(detail);
  return std::unexpected(std::move(e));
}

// ---- Domain ---------------------------------------------------------------------------------------
Domain::Domain(DomainSpec spec)
    : spec_(std::move(spec)),
      st_(std::make_shared<detail::DomainState>()),
      handles_(static_cast<std::size_t>(spec_.policy.handle_quota())) {}

namespace {
thread_local Domain* t_calling = nullptr;
}
Domain* Domain::calling() { return t_calling; }

Domain::~Domain() {
  if (!st_) return;
  if (!st_->reaped.load()) {
    (void)st_->record([] {
      Error e;
      e.kind = Errc::misuse;
      e.detail = "the domain was destroyed";
      return e;
    }());
    st_->kill_child();
    // Reaping follows SIGKILL within milliseconds; wait (boundedly: a tracer can hold the exit
    // back) so that normally no child outlives its Domain. The reaper keeps watching otherwise.
    (void)st_->wait_reaped(kReapWaitMs);
  }
}

pid_t Domain::pid() const { return st_->pid; }
bool Domain::alive() const { return !st_->failed.load(std::memory_order_acquire); }

std::optional<Error> Domain::failure() const {
  std::lock_guard<std::mutex> g(st_->mu);
  return st_->cause;
}

void Domain::kill() { st_->kill_child(); }

std::string Domain::fn_label(std::uint32_t table, std::uint32_t fn) const {
  if (table >= spec_.tables.size()) return "table#" + std::to_string(table);
  const auto& t = spec_.tables[table];
  return fn < t.fn_names.size() ? t.fn_names[fn] : t.name + "::fn#" + std::to_string(fn);
}

Error Domain::fail_with(Error e) {
  Error recorded = st_->record(std::move(e));
  st_->kill_child();
  // Reaping follows SIGKILL within milliseconds; waiting means that when a failed call returns,
  // the child is normally gone and its exit status known. Bounded, because a tracer attached to
  // the child receives its exit first and may sit on it: the recorded cause stands regardless.
  (void)st_->wait_reaped(kReapWaitMs);
  return recorded;
}

Error Domain::current_failure(std::string_view function, bool earlier) const {
  Error e;
  {
    std::lock_guard<std::mutex> g(st_->mu);
    if (st_->cause) e = *st_->cause;
  }
  e.plugin = spec_.name;
  if (earlier || e.function.empty()) e.function = std::string(function);
  e.earlier = earlier;
  return e;
}

Result<std::unique_ptr<Domain>> Domain::start(DomainSpec spec) {
  auto decorate = [&](Error e) {
    e.plugin = spec.name;
    e.function = "<load>";
    return std::unexpected(std::move(e));
  };
  if (spec.tables.empty() || spec.tables.size() > w::kMaxTables)
    return decorate(fail(Errc::misuse, "a domain needs 1 to 16 function tables").error());
  if (spec.entry.empty()) return decorate(fail(Errc::misuse, "no entry symbol given").error());
  // Check the plugin file here, where the error can be precise.
  struct stat sb {};
  if (spec.plugin.empty() || ::stat(spec.plugin.c_str(), &sb) != 0)
    return decorate(fail(Errc::load_failed, "plugin '" + spec.plugin + "': " + std::strerror(errno)).error());
  if (!S_ISREG(sb.st_mode)) return decorate(fail(Errc::load_failed, "plugin '" + spec.plugin + "' is not a regular file").error());
  if (access(spec.plugin.c_str(), R_OK) != 0)
    return decorate(fail(Errc::load_failed, "plugin '" + spec.plugin + "' is not readable").error());
  char real[PATH_MAX];
  if (!realpath(spec.plugin.c_str(), real)) return decorate(fail(Errc::load_failed, errno_text("realpath")).error());
  spec.plugin = real;
  if (spec.name.empty()) spec.name = std::filesystem::path(spec.plugin).filename().string();
  std::unique_ptr<Domain> d(new Domain(std::move(spec)));
  if (auto r = d->boot(); !r) {
    Error e = r.error();
    e.plugin = d->spec_.name;
    if (e.function.empty()) e.function = "<load>";
    return std::unexpected(std::move(e));
  }
  return d;
}

Result<void> Domain::boot() {
  const Policy& pol = spec_.policy;
  auto dir = helper_dir();
  if (!dir) return std::unexpected(dir.error());

  // Arena: a sealed memfd (the child can neither shrink it under the host, which would SIGBUS
  // the host, nor grow it), mapped shared in both processes.
  size_ = pol.arena_size();
  const int raw = memfd_create("ward-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (raw < 0) return fail(Errc::load_failed, errno_text("memfd_create"));
  // Keep the descriptor away from 3 so dup2 onto 3 in the child clears close-on-exec.
  const int fd = fcntl(raw, F_DUPFD_CLOEXEC, 10);
  ::close(raw);
  if (fd < 0) return fail(Errc::load_failed, errno_text("fcntl"));
  struct FdGuard {
    int fd;
    ~FdGuard() { ::close(fd); }
  } guard{fd};
  if (ftruncate(fd, static_cast<off_t>(size_)) != 0) return fail(Errc::load_failed, errno_text("ftruncate arena"));
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    return fail(Errc::load_failed, errno_text("sealing the arena"));
  void* m = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) return fail(Errc::load_failed, errno_text("mmap arena"));
  base_ = static_cast<std::byte*>(m);
  st_->base = base_;
  st_->size = size_;
  ctl_ = reinterpret_cast<w::Control*>(base_);

  // Boot area: control block, filter space, schema, paths.
  std::uint64_t off = w::kControlSize;
  const std::uint64_t filter_off = off;
  off += kFilterReserve;
  const std::uint64_t schema_off = w::align_up(off, 64);
  off = schema_off + sizeof(w::Schema);
  std::vector<std::uint64_t> fns_off;
  for (const auto& t : spec_.tables) {
    if (t.fns.size() > sc::kMaxFns) return fail(Errc::misuse, "table " + t.name + " has more than 64 functions");
    off = w::align_up(off, 64);
    fns_off.push_back(off);
    off += t.fns.size() * sizeof(sc::Fn);
  }
  const std::uint64_t plugin_off = off;
  off += spec_.plugin.size() + 1;
  const std::uint64_t entry_off = off;
  off += spec_.entry.size() + 1;
  data_off_ = w::align_up(off, 4096);
  if (data_off_ + 4096 > size_)
    return fail(Errc::misuse, "arena of " + std::to_string(size_) + " bytes is too small for the boot area (" +
                                  std::to_string(data_off_) + " bytes) plus frames");
  ctl_->magic = w::kMagic;
  ctl_->version = w::kVersion;
  ctl_->arena_size = size_;
  ctl_->data_off = data_off_;
  ctl_->rlimit_as = pol.memory();
  ctl_->rlimit_cpu = pol.cpu_seconds();
  ctl_->rlimit_nofile = pol.open_files();
  ctl_->rlimit_fsize = pol.max_file_size();
  ctl_->spin_ns = static_cast<std::uint64_t>(pol.spin().count());
  spin_.set_max(ctl_->spin_ns);
  ctl_->filter_off = filter_off;
  ctl_->schema_off = schema_off;
  ctl_->plugin_off = plugin_off;
  ctl_->entry_off = entry_off;
  auto* schema = reinterpret_cast<w::Schema*>(base_ + schema_off);
  schema->ntables = static_cast<std::uint32_t>(spec_.tables.size());
  // Logical protection domain: a service table's entry is live only if the policy grants it.
  for (std::size_t i = 1; i < spec_.tables.size(); ++i)
    for (std::size_t k = 0; k < spec_.tables[i].fns.size(); ++k)
      spec_.tables[i].fns[k].flags = pol.grants(spec_.tables[i].fn_names[k]) ? sc::kFnGranted : 0;
  st_->service_names.clear();
  for (const auto& t : spec_.tables) st_->service_names.push_back(t.fn_names);
  for (std::size_t i = 0; i < spec_.tables.size(); ++i) {
    const auto& t = spec_.tables[i];
    schema->tables[i].struct_size = t.struct_size;
    schema->tables[i].nfns = static_cast<std::uint32_t>(t.fns.size());
    schema->tables[i].fns_off = fns_off[i];
    std::memcpy(base_ + fns_off[i], t.fns.data(), t.fns.size() * sizeof(sc::Fn));
  }
  std::memcpy(base_ + plugin_off, spec_.plugin.c_str(), spec_.plugin.size() + 1);
  std::memcpy(base_ + entry_off, spec_.entry.c_str(), spec_.entry.size() + 1);
  impls_.assign(spec_.tables.size(), nullptr);
  top_ = data_off_;

  // Spawn on the reaper thread (see reaper.h for why).
  const std::string helper = *dir + "/ward-helper";
  const std::string audit = "LD_AUDIT=" + *dir + "/libward-audit.so";
  const std::string plugin_env = "WARD_PLUGIN=" + spec_.plugin;
  const std::string parent = std::to_string(getpid());
  // The child's stdout and stderr are its own output channel (domain/output.h), never the host's.
  auto output = detail::OutputPipes::open();
  if (!output) return std::unexpected(output.error());
  auto spawned = detail::Reaper::get().spawn(st_, [&]() -> Result<pid_t> {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, w::kArenaFd);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, output->child_end(1), 1);
    posix_spawn_file_actions_adddup2(&fa, output->child_end(2), 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    // The child starts with default signal dispositions and no blocked signals, whatever the
    // host set up.
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setsigmask(&at, &none);
    // A session of its own: no controlling terminal, so even with file access "/dev/tty" is not
    // the user's terminal (to read, or to push keystrokes into), and no terminal signals.
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
    char* argv[] = {const_cast<char*>(helper.c_str()), const_cast<char*>(parent.c_str()), nullptr};
    char* envp[] = {const_cast<char*>(audit.c_str()), const_cast<char*>(plugin_env.c_str()), nullptr};
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, helper.c_str(), &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) return fail(Errc::load_failed, "posix_spawn " + helper + ": " + std::strerror(rc));
    return pid;
  });
  if (!spawned) return std::unexpected(spawned.error());
  if (auto r = detail::attach_output(std::move(*output), spec_.name, pol, st_->pidfd); !r)
    return std::unexpected(fail_with(r.error()));

  // The filter can name the child's pid now (signals may target only itself).
  auto filter = detail::compile_filter(pol, st_->pid);
  if (!filter) return std::unexpected(fail_with(filter.error()));
  if (filter->size() * sizeof(sock_filter) > kFilterReserve) return std::unexpected(fail_with(fail(Errc::load_failed, "seccomp filter too large").error()));
  std::memcpy(base_ + filter_off, filter->data(), filter->size() * sizeof(sock_filter));
  ctl_->filter_len = static_cast<std::uint32_t>(filter->size());
  const std::uint64_t handed_over = detail::fast_ns();
  ctl_->boot_ready.store(1, std::memory_order_release);
  w::futex_wake(&ctl_->boot_ready);

  auto ready = wait_child("<load>", static_cast<std::uint64_t>(pol.load_timeout().count()), handed_over);
  if (!ready) return std::unexpected(ready.error());
  if (ready->kind == w::MsgKind::load_error) {
    Error e;
    e.kind = Errc::load_failed;
    e.detail = st_->child_text();
    return std::unexpected(fail_with(std::move(e)));
  }
  if (ready->kind != w::MsgKind::ready)
    return std::unexpected(fail_with(fail(Errc::violation, "unexpected message while loading").error()));
  st_->loaded.store(true, std::memory_order_release);
  spin_.reset();
  return {};
}

// Waits for the child's next message, giving it `budget_ns` of its own time (see "Time" in
// domain.h). The clock tiles the call without gaps: the extension's time runs from `handed_over`
// (taken before the host rang the child: the wake-up itself may hand the CPU to the child) until
// the host notices its message; a host service's time runs from then until the instant before
// the host rings the reply, where the extension's time starts again. Spinning counts like
// sleeping; only host services are excluded.
Result<w::Msg> Domain::wait_child(std::string_view function, std::uint64_t budget_ns, std::uint64_t handed_over) {
  const std::uint64_t outer_limit = ext_limit_;
  const std::uint64_t own_limit = budget_ns > ~0ull - ext_ns_ ? ~0ull : ext_ns_ + budget_ns;
  const std::uint64_t limit = std::min(own_limit, outer_limit);
  ext_limit_ = limit;
  struct Restore {
    std::uint64_t& slot;
    std::uint64_t value;
    ~Restore() { slot = value; }
  } restore{ext_limit_, outer_limit};
  auto timed_out = [&]() -> Result<w::Msg> {
    Error e;
    e.kind = Errc::hung;
    e.function = std::string(function);
    e.detail = limit == own_limit
                   ? "no reply within " + std::to_string(budget_ns / 1000000) + " ms; the extension was killed"
                   : "no reply before the enclosing call's budget ran out; the extension was killed";
    (void)fail_with(std::move(e));
    return std::unexpected(current_failure(function, false));
  };
  std::uint64_t mark = handed_over;  // the extension's time counts from here
  for (;;) {
    if (ext_ns_ >= limit) return timed_out();
    const std::uint64_t left = limit - ext_ns_;
    const std::uint64_t spin = std::min(spin_.budget(ctl_->to_host, ctl_->to_child), left);
    bool changed = w::spin_for_change(ctl_->to_host, seen_, spin);
    if (!changed) {
      // The slow path: turn what is left, counted from the mark, into one absolute deadline on
      // the monotonic clock (the futex's); wake-ups never move it.
      const std::uint64_t now_fast = detail::fast_ns();
      const std::uint64_t since_mark = now_fast > mark ? now_fast - mark : 0;
      const std::uint64_t deadline = w::mono_ns() + (left > since_mark ? left - since_mark : 0);
      while (!changed && !st_->failed.load(std::memory_order_acquire)) {
        const std::uint64_t now = w::mono_ns();
        if (now >= deadline) break;
        // Sleep in slices so a death is seen even if a wake-up were lost (the reaper rings the
        // doorbell, but the extension can requeue waiters).
        changed = w::sleep_for_change(ctl_->to_host, seen_, std::min(deadline, now + 100'000'000));
      }
    }
    const std::uint64_t noticed = detail::fast_ns();
    const std::uint64_t waited = noticed > mark ? noticed - mark : 0;
    ext_ns_ += waited;
    spin_.observe(waited);
    if (st_->failed.load(std::memory_order_acquire)) return std::unexpected(current_failure(function, false));
    if (!changed) return timed_out();
    seen_ = ctl_->to_host.seq.load(std::memory_order_acquire);
    const w::Msg m = ctl_->to_host.msg;  // one copy; decisions use only the copy
    if (m.kind != w::MsgKind::upcall) return m;
    mark = noticed;  // host time from here; serve_upcall moves the mark to its hand-back
    auto r = serve_upcall(m, mark);
    if (!r) {
      Error e = r.error();
      if (e.function.empty()) e.function = std::string(function);
      (void)fail_with(std::move(e));
      return std::unexpected(current_failure(function, false));
    }
  }
}

std::uint64_t Domain::service_time_ns() const {
  // `since` is cleared before `total` grows, so a reader errs on the low side, never double-counts.
  const std::uint64_t since = service_since_.load(std::memory_order_acquire);
  const std::uint64_t total = service_ns_.load(std::memory_order_acquire);
  const std::uint64_t now = detail::fast_ns();
  return total + (since != 0 && now > since ? now - since : 0);
}

Result<void> Domain::serve_upcall(const w::Msg& m, std::uint64_t& handed_back) {
  if (m.table == 0 || m.table >= spec_.tables.size() || m.fn >= spec_.tables[m.table].dispatch.size())
    return fail(Errc::violation, "upcall to an unknown host service (table " + std::to_string(m.table) + ", function " +
                                     std::to_string(m.fn) + ")");
  if ((spec_.tables[m.table].fns[m.fn].flags & sc::kFnGranted) == 0)
    return fail(Errc::violation, "called host service " + fn_label(m.table, m.fn) + ", which this domain was not granted");
  const void* impl = impls_[m.table];
  if (!impl) return fail(Errc::violation, "upcall to host service table " + spec_.tables[m.table].name + " it was never given");
  const std::uint64_t nslots = spec_.tables[m.table].fns[m.fn].nparams + 1;
  if (m.frame_off < data_off_ || m.frame_off > size_ || nslots * sizeof(sc::Slot) > size_ - m.frame_off ||
      m.frame_off % alignof(sc::Slot) != 0)
    return fail(Errc::violation, "upcall frame outside the arena");
  std::uint64_t top = std::max<std::uint64_t>(m.top, m.frame_off + nslots * sizeof(sc::Slot));
  if (top > size_) return fail(Errc::violation, "upcall frame top outside the arena");
  const std::uint64_t saved = top_;
  top_ = std::max(top_, top);
  Upcall up(*this, m, top_);
  Domain* const outer = t_calling;
  t_calling = this;
  // Threads waiting for this domain watch how long its holder sits in host services (deadlock
  // detection, see begin()); only the outermost service is timed, nested ones lie inside it.
  const bool outermost = service_depth_++ == 0;
  const std::uint64_t started = handed_back;  // when the host noticed the upcall
  if (outermost) {
    service_label_.store((std::uint64_t{m.table} << 32) | m.fn, std::memory_order_relaxed);
    service_since_.store(started, std::memory_order_release);
  }
  auto r = spec_.tables[m.table].dispatch[m.fn](up, impl);
  handed_back = detail::fast_ns();
  if (outermost) {
    service_since_.store(0, std::memory_order_release);
    service_ns_.fetch_add(handed_back - started, std::memory_order_acq_rel);
  }
  --service_depth_;
  t_calling = outer;
  top_ = saved;
  if (!r) return r;
  if (st_->failed.load(std::memory_order_acquire)) return {};  // nested call failed: reported by caller
  w::Msg reply{};
  reply.kind = w::MsgKind::upret;
  reply.table = m.table;
  reply.fn = m.fn;
  reply.frame_off = m.frame_off;
  reply.top = up.top_;
  reply.ret = up.ret_;
  ctl_->to_child.msg = reply;
  w::ring(ctl_->to_child);
  return {};
}

Result<bool> Domain::heartbeat(std::chrono::nanoseconds timeout) {
  std::unique_lock<std::recursive_mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock()) return false;
  if (st_->failed.load(std::memory_order_acquire)) return std::unexpected(current_failure("<heartbeat>", true));
  w::Msg m{};
  m.kind = w::MsgKind::ping;
  ctl_->to_child.msg = m;
  const std::uint64_t handed_over = detail::fast_ns();
  w::ring(ctl_->to_child);
  auto reply = wait_child("<heartbeat>", static_cast<std::uint64_t>(timeout.count()), handed_over);
  if (!reply) {
    Error e = reply.error();
    e.plugin = spec_.name;
    if (e.kind == Errc::hung) e.detail = "stopped answering heartbeats; the extension was killed";
    return std::unexpected(std::move(e));
  }
  if (reply->kind != w::MsgKind::pong) {
    (void)fail_with(fail(Errc::violation, "malformed heartbeat answer").error());
    return std::unexpected(current_failure("<heartbeat>", false));
  }
  return true;
}

std::vector<std::string> Domain::granted_services() const {
  std::vector<std::string> v;
  for (std::size_t i = 1; i < spec_.tables.size(); ++i)
    for (std::size_t k = 0; k < spec_.tables[i].fns.size(); ++k)
      if (spec_.tables[i].fns[k].flags & sc::kFnGranted) v.push_back(spec_.tables[i].fn_names[k]);
  return v;
}

void Domain::set_service_impl(std::uint32_t table, const void* impl) {
  if (table < impls_.size()) impls_[table] = impl;
}

// ---- Call -----------------------------------------------------------------------------------------
Result<Domain::Call> Domain::begin(std::uint32_t fn) {
  std::unique_lock<std::recursive_mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock())
    if (auto w = wait_for_channel(lock, fn); !w) return std::unexpected(w.error());
  if (st_->failed.load(std::memory_order_acquire)) return std::unexpected(current_failure(fn_label(0, fn), true));
  if (depth_ >= spec_.policy.max_nesting()) {
    Error e = fail(Errc::limit, "calls nested " + std::to_string(depth_) +
                                    " deep on this thread (host -> extension -> host service -> ...); Policy "
                                    "max_nesting is " + std::to_string(spec_.policy.max_nesting()))
                  .error();
    e.plugin = spec_.name;
    e.function = fn_label(0, fn);
    return std::unexpected(std::move(e));
  }
  return Call(this, fn, std::move(lock));
}

// Another thread holds the channel. Waiting is fine while it runs extension code (its call
// budgets bound that); time it spends in host services is charged to this waiter's patience,
// because a host service that waits for this thread would never come back.
Result<void> Domain::wait_for_channel(std::unique_lock<std::recursive_mutex>& lock, std::uint32_t fn) {
  const std::uint64_t patience = static_cast<std::uint64_t>(spec_.policy.timeout().count());
  const std::uint64_t start = service_time_ns();
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  struct Leave {
    std::atomic<unsigned>& n;
    ~Leave() { n.fetch_sub(1, std::memory_order_seq_cst); }
  } leave{waiters_};
  std::unique_lock<std::mutex> g(wait_mu_);
  for (;;) {
    // Tried under wait_mu_, which the releasing thread takes to notify: a release between this
    // try and the wait below cannot be missed. The 10 ms bound is only a safety net (and when
    // the deadlock check runs); the system clock is fine for it, the patience is measured on the
    // monotonic one.
    if (lock.try_lock()) return {};
    wait_cv_.wait_until(g, std::chrono::system_clock::now() + std::chrono::milliseconds(10));
    if (lock.try_lock()) return {};
    const std::uint64_t in_services = service_time_ns() - start;
    if (in_services < patience) continue;
    const std::uint64_t label = service_label_.load(std::memory_order_relaxed);
    Error e = fail(Errc::misuse,
                   "waited for the domain while another thread spent " + std::to_string(in_services / 1000000) +
                       " ms inside host service " + fn_label(static_cast<std::uint32_t>(label >> 32),
                                                             static_cast<std::uint32_t>(label)) +
                       " (more than the call timeout): a host service that waits for a thread calling the "
                       "same domain deadlocks, since calls into one domain are serialized")
                  .error();
    e.plugin = spec_.name;
    e.function = fn_label(0, fn);
    return std::unexpected(std::move(e));
  }
}

Domain::Call::Call(Domain* d, std::uint32_t fn, std::unique_lock<std::recursive_mutex> lock)
    : d_(d), fn_(fn), saved_top_(d->top_), lock_(std::move(lock)) {
  ++d_->depth_;
}

Domain::Call::Call(Call&& o) noexcept
    : d_(std::exchange(o.d_, nullptr)), fn_(o.fn_), saved_top_(o.saved_top_), lock_(std::move(o.lock_)) {}

Domain::Call::~Call() {
  if (!d_) return;
  d_->top_ = saved_top_;
  const bool outermost = --d_->depth_ == 0;
  lock_.unlock();
  if (outermost && d_->waiters_.load(std::memory_order_seq_cst) != 0) {
    std::lock_guard<std::mutex> g(d_->wait_mu_);
    d_->wait_cv_.notify_all();
  }
}

Result<std::uint64_t> Domain::Call::alloc(std::uint64_t n, std::uint64_t align) {
  const std::uint64_t capacity = d_->size_ - d_->data_off_;
  if (n > capacity)
    return std::unexpected(decorate(fail(Errc::misuse, "argument of " + std::to_string(n) +
                                                           " bytes is larger than the arena's frame area (" +
                                                           std::to_string(capacity) + " bytes); raise Policy arena_size")
                                        .error()));
  const std::uint64_t off = w::align_up(d_->top_, align);
  if (off > d_->size_ || n > d_->size_ - off)
    return std::unexpected(decorate(fail(Errc::limit, "arena exhausted: " + std::to_string(n) + " bytes needed, " +
                                                          std::to_string(d_->size_ - std::min(off, d_->size_)) +
                                                          " free at this nesting depth")
                                        .error()));
  d_->top_ = off + n;
  return off;
}

std::byte* Domain::Call::at(std::uint64_t off) const { return d_->base_ + off; }

Result<sc::Slot> Domain::Call::invoke(std::uint64_t frame_off) {
  w::Msg m{};
  m.kind = w::MsgKind::call;
  m.table = 0;
  m.fn = fn_;
  m.frame_off = frame_off;
  m.frame_len = d_->top_ - frame_off;
  m.top = d_->top_;
  d_->ctl_->to_child.msg = m;
  const std::uint64_t handed_over = detail::fast_ns();
  w::ring(d_->ctl_->to_child);
  const std::string& label = d_->spec_.tables[0].fn_names[fn_];
  auto reply = d_->wait_child(label, static_cast<std::uint64_t>(d_->spec_.policy.timeout().count()), handed_over);
  if (!reply) return std::unexpected(decorate(reply.error()));
  if (reply->kind != w::MsgKind::ret || reply->frame_off != frame_off) {
    (void)d_->fail_with(fail(Errc::violation, "malformed reply from the extension").error());
    return std::unexpected(decorate(d_->current_failure(label, false)));
  }
  return reply->ret;
}

Result<const std::byte*> Domain::Call::returned_range(std::uint64_t off, std::uint64_t n) {
  if (off < d_->data_off_ || off > d_->size_ || n > d_->size_ - off) {
    (void)d_->fail_with(fail(Errc::violation, "returned a pointer outside the arena (offset " + std::to_string(off) +
                                                  ", " + std::to_string(n) + " bytes)")
                            .error());
    return std::unexpected(decorate(d_->current_failure(d_->fn_label(0, fn_), false)));
  }
  return d_->base_ + off;
}

Result<void> Domain::Call::check_handle(std::uint64_t h, HandleType type, Rights required, bool from_extension) {
  auto r = d_->handles_.check(h, type, required);
  if (r) return {};
  if (!from_extension) {
    Error e = r.error();
    e.kind = Errc::misuse;
    e.detail = "the host passed a " + e.detail;
    return std::unexpected(decorate(std::move(e)));
  }
  (void)d_->fail_with(fail(Errc::violation, "returned a " + r.error().detail).error());
  return std::unexpected(decorate(d_->current_failure(d_->fn_label(0, fn_), false)));
}

Error Domain::Call::decorate(Error e) const {
  e.plugin = d_->spec_.name;
  if (e.function.empty()) e.function = d_->fn_label(0, fn_);
  return e;
}

}  // namespace ward
