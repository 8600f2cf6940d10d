#include "ward/process/domain.h"

#include <dlfcn.h>
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
#include "ward/process/checkpoint_area.h"
#include "process/reaper.h"
#include "process/seccomp.h"
#include "ward/backend/find_library.h"

extern char** environ;

namespace ward {
namespace w = wire;
namespace sc = schema;

namespace {

// Longest a failing call or a destructor waits for the killed child's exit status.
constexpr int kReapWaitMs = 1000;

constexpr std::uint64_t kFilterReserve = 2048 * sizeof(sock_filter);  // ours are a few hundred

// Where ward-helper and libward-audit.so live. First match wins:
//  1. $WARD_HELPER_DIR: an override, for unusual layouts;
//  2. relative to the libward holding this code (libdir -> libexec/ward): an installed shared
//     libward, wherever its prefix has been moved since;
//  3. relative to the executable (bindir -> libexec/ward): the installed `ward` CLI, and programs
//     installed into ward's prefix with libward linked in statically;
//  4. the build directory, but only for code running from inside it (the tests, build/ward), so
//     that an installed program never picks up a build tree's helper of another version;
//  5. the prefix ward was configured to install to (a static libward in a program elsewhere);
//  6. the executable's own directory.
Result<std::string> helper_dir() {
  namespace fs = std::filesystem;
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("WARD_HELPER_DIR"); env && *env) candidates.emplace_back(env);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  fs::path lib;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&helper_dir), &info) != 0 && info.dli_fname && *info.dli_fname) {
    char real[PATH_MAX];
    if (realpath(info.dli_fname, real)) lib = real;
  }
  if (!lib.empty()) candidates.push_back((lib.parent_path() / WARD_LIBDIR_TO_HELPER).lexically_normal().string());
  if (!exe.empty()) candidates.push_back((exe.parent_path() / WARD_BINDIR_TO_HELPER).lexically_normal().string());
  const std::string build = std::string(WARD_BUILD_DIR) + "/";
  if (exe.string().starts_with(build) || lib.string().starts_with(build)) candidates.emplace_back(WARD_BUILD_DIR);
  candidates.emplace_back(WARD_INSTALL_HELPER_DIR);
  if (!exe.empty()) candidates.push_back(exe.parent_path().string());
  std::string looked;
  for (const auto& dir : candidates) {
    if (access((dir + "/ward-helper").c_str(), X_OK) == 0 && access((dir + "/libward-audit.so").c_str(), R_OK) == 0)
      return dir;
    looked += (looked.empty() ? "" : ", ") + dir;
  }
  return fail(Errc::load_failed, "cannot find ward-helper and libward-audit.so (looked in " + looked +
                                 "; set WARD_HELPER_DIR to the directory that holds them)");
}

}  // namespace

// ---- Domain ---------------------------------------------------------------------------------------
ProcessDomain::ProcessDomain(Spec spec) : Domain(std::move(spec)), st_(std::make_shared<detail::DomainState>()) {}

ProcessDomain::~ProcessDomain() {
  // Before the arena can be unmapped (with the DomainState, possibly right here).
  detach_sandbox();
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

pid_t ProcessDomain::pid() const { return st_->pid; }
bool ProcessDomain::alive() const { return !st_->failed.load(std::memory_order_acquire); }

std::optional<Error> ProcessDomain::failure() const {
  std::lock_guard<std::mutex> g(st_->mu);
  return st_->cause;
}

void ProcessDomain::kill() { st_->kill_child(); }

Error ProcessDomain::fail_with(Error e) {
  Error recorded = st_->record(std::move(e));
  st_->kill_child();
  // Reaping follows SIGKILL within milliseconds; waiting means that when a failed call returns,
  // the child is normally gone and its exit status known. Bounded, because a tracer attached to
  // the child receives its exit first and may sit on it: the recorded cause stands regardless.
  (void)st_->wait_reaped(kReapWaitMs);
  return recorded;
}

Error ProcessDomain::current_failure(std::string_view function, bool earlier) const {
  Error e;
  {
    std::lock_guard<std::mutex> g(st_->mu);
    if (st_->cause) e = *st_->cause;
  }
  e.plugin = name();
  if (earlier || e.function.empty()) e.function = std::string(function);
  e.earlier = earlier;
  return e;
}

Result<std::unique_ptr<Domain>> ProcessDomain::start(Spec spec) {
  auto decorate = [&](Error e) {
    e.plugin = spec.name;
    e.function = "<load>";
    return std::unexpected(std::move(e));
  };
  if (spec.tables.empty() || spec.tables.size() > w::kMaxTables)
    return decorate(fail(Errc::misuse, "a domain needs 1 to 16 function tables").error());
  // Without an entry, table 0 is a library's free functions, each bound by its symbol.
  if (spec.entry.empty() && spec.tables[0].symbols.size() != spec.tables[0].fns.size())
    return decorate(fail(Errc::misuse, "no entry symbol given").error());
  if (spec.entry.empty()) {
    auto found = find_library(spec.plugin);
    if (!found) return decorate(found.error());
    spec.plugin = *found;
  }
  // Check the plugin file here, where the error can be precise.
  struct stat sb {};
  if (spec.plugin.empty() || ::stat(spec.plugin.c_str(), &sb) != 0)
    return decorate(fail(Errc::load_failed, "plugin '" + spec.plugin + "': " + std::strerror(errno)).error());
  if (!S_ISREG(sb.st_mode)) return decorate(fail(Errc::load_failed, "plugin '" + spec.plugin + "' is not a regular file").error());
  if (access(spec.plugin.c_str(), R_OK) != 0)
    return decorate(fail(Errc::load_failed, "plugin '" + spec.plugin + "' is not readable").error());
  char real[PATH_MAX];
  if (!realpath(spec.plugin.c_str(), real)) return decorate(fail(Errc::load_failed, errno_text("realpath", errno)).error());
  spec.plugin = real;
  if (spec.name.empty()) spec.name = std::filesystem::path(spec.plugin).filename().string();
  std::unique_ptr<ProcessDomain> d(new ProcessDomain(std::move(spec)));
  if (auto r = d->boot(); !r) {
    Error e = r.error();
    e.plugin = d->name();
    if (e.function.empty()) e.function = "<load>";
    return std::unexpected(std::move(e));
  }
  return std::unique_ptr<Domain>(std::move(d));
}

// Boot, in order: the arena, the boot area the child reads, the child, its filter, its answer.
Result<void> ProcessDomain::boot() {
  auto dir = WARD_TRY(helper_dir());
  auto fd = WARD_TRY(make_arena());
  struct FdGuard {
    int fd;
    ~FdGuard() { ::close(fd); }
  } guard{fd};
  WARD_TRY(write_boot_area());
  WARD_TRY(spawn_child(dir, fd));
  return await_ready();
}

// A sealed memfd (the child can neither shrink it under the host, which would SIGBUS the host,
// nor grow it), mapped shared in both processes. Returns the descriptor; the caller closes it.
Result<int> ProcessDomain::make_arena() {
  // A checkpointable extension's heap is part of the arena (checkpoint_area.h), beside frames.
  const std::uint64_t ckpt = w::align_up(spec().checkpoint_bytes, 4096);
  if (ckpt != 0 && ckpt <= w::kCkptHeapStart)
    return fail(Errc::misuse, "a checkpointable heap of " + std::to_string(ckpt) + " bytes is too small");
  size_ = policy().arena_size() + ckpt;
  const int raw = memfd_create("ward-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (raw < 0) return fail(Errc::load_failed, errno_text("memfd_create", errno));
  // Keep the descriptor away from 3 so dup2 onto 3 in the child clears close-on-exec.
  const int fd = fcntl(raw, F_DUPFD_CLOEXEC, 10);
  ::close(raw);
  if (fd < 0) return fail(Errc::load_failed, errno_text("fcntl", errno));
  auto fail_closing = [fd](const char* what) -> Result<int> {
    Error e = fail(Errc::load_failed, errno_text(what, errno)).error();
    ::close(fd);
    return std::unexpected(std::move(e));
  };
  if (ftruncate(fd, static_cast<off_t>(size_)) != 0) return fail_closing("ftruncate arena");
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) return fail_closing("sealing the arena");
  void* m = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) return fail_closing("mmap arena");
  base_ = static_cast<std::byte*>(m);
  st_->base = base_;
  st_->size = size_;
  ctl_ = reinterpret_cast<w::Control*>(base_);
  return fd;
}

// The boot area the child reads once: control block, filter space, schema, paths.
Result<void> ProcessDomain::write_boot_area() {
  const Policy& pol = policy();
  std::uint64_t off = w::kControlSize;
  filter_off_ = off;
  off += kFilterReserve;
  const std::uint64_t schema_off = w::align_up(off, 64);
  off = schema_off + sizeof(w::Schema);
  std::vector<std::uint64_t> fns_off;
  for (const auto& t : spec().tables) {
    if (t.fns.size() > sc::kMaxFns) return fail(Errc::misuse, "table " + t.name + " has more than 64 functions");
    off = w::align_up(off, 64);
    fns_off.push_back(off);
    off += t.fns.size() * sizeof(sc::Fn);
  }
  const std::uint64_t plugin_off = off;
  off += spec().plugin.size() + 1;
  const std::uint64_t entry_off = off;
  off += spec().entry.size() + 1;
  // A library's symbol names, one after another; each function records where its own starts.
  std::vector<sc::Fn> fns0 = spec().tables[0].fns;
  const std::vector<std::string>& symbols = spec().tables[0].symbols;
  const std::uint64_t symbols_off = off;
  for (std::size_t i = 0; i < symbols.size(); ++i) {
    fns0[i].symbol = static_cast<std::uint32_t>(off);
    off += symbols[i].size() + 1;
  }
  // [deep] The described structs.
  const std::uint64_t structs_off = w::align_up(off, 64);
  off = structs_off + spec().structs.size() * sizeof(sc::Struct);
  // The checkpoint area, page-aligned, before the frame stack (frames never reach it).
  ckpt_off_ = w::align_up(off, 4096);
  ckpt_size_ = w::align_up(spec().checkpoint_bytes, 4096);
  off = ckpt_off_ + ckpt_size_;
  data_off_ = w::align_up(off, 4096);
  // Sandbox memory takes the end of the arena, page-aligned, so frames can never grow into it.
  const std::uint64_t sandbox = w::align_up(pol.sandbox_memory(), SandboxHeap::kMinAlign);
  heap_off_ = sandbox == 0 ? size_ : (size_ - std::min(sandbox, size_)) / 4096 * 4096;
  if (data_off_ + 4096 > heap_off_)
    return fail(Errc::misuse, "arena of " + std::to_string(size_) + " bytes is too small for the boot area (" +
                                  std::to_string(data_off_) + " bytes), " + std::to_string(sandbox) +
                                  " bytes of sandbox memory and frames");
  ctl_->magic = w::kMagic;
  ctl_->version = w::kVersion;
  ctl_->arena_size = size_;
  ctl_->data_off = data_off_;
  ctl_->heap_off = heap_off_;
  ctl_->arena_at = spec().arena_at;
  ctl_->ckpt_off = ckpt_off_;
  ctl_->ckpt_size = ckpt_size_;
  ctl_->rlimit_as = pol.memory();
  ctl_->rlimit_cpu = pol.lifetime_cpu_seconds();  // 0 (default): no lifetime limit
  ctl_->rlimit_nofile = pol.open_files();
  ctl_->rlimit_fsize = pol.max_file_size();
  ctl_->spin_ns = static_cast<std::uint64_t>(pol.spin().count());
  spin_.set_max(ctl_->spin_ns);
  ctl_->filter_off = filter_off_;
  ctl_->schema_off = schema_off;
  ctl_->plugin_off = plugin_off;
  ctl_->entry_off = entry_off;
  auto* schema = reinterpret_cast<w::Schema*>(base_ + schema_off);
  schema->ntables = static_cast<std::uint32_t>(spec().tables.size());
  st_->service_names.clear();
  for (const auto& t : spec().tables) st_->service_names.push_back(t.fn_names);
  for (std::size_t i = 0; i < spec().tables.size(); ++i) {
    const auto& t = spec().tables[i];
    schema->tables[i].struct_size = t.struct_size;
    schema->tables[i].nfns = static_cast<std::uint32_t>(t.fns.size());
    schema->tables[i].fns_off = fns_off[i];
    std::memcpy(base_ + fns_off[i], i == 0 ? fns0.data() : t.fns.data(), t.fns.size() * sizeof(sc::Fn));
  }
  for (std::size_t i = 0, at = symbols_off; i < symbols.size(); at += symbols[i].size() + 1, ++i)
    std::memcpy(base_ + at, symbols[i].c_str(), symbols[i].size() + 1);
  schema->structs_off = structs_off;
  schema->nstructs = static_cast<std::uint32_t>(spec().structs.size());
  schema->deep_max_bytes = sc::kDeepMaxBytes;
  if (!spec().structs.empty())
    std::memcpy(base_ + structs_off, spec().structs.data(), spec().structs.size() * sizeof(sc::Struct));
  std::memcpy(base_ + plugin_off, spec().plugin.c_str(), spec().plugin.size() + 1);
  std::memcpy(base_ + entry_off, spec().entry.c_str(), spec().entry.size() + 1);
  top_ = data_off_;

  return {};
}

// Spawns the child on the reaper thread (see reaper.h for why) with the arena on descriptor 3.
Result<void> ProcessDomain::spawn_child(const std::string& dir, int fd) {
  const Policy& pol = policy();
  const std::string helper = dir + "/ward-helper";
  const std::string audit = "LD_AUDIT=" + dir + "/libward-audit.so";
  const std::string plugin_env = "WARD_PLUGIN=" + spec().plugin;
  // The child's loader searches for the plugin's own dependencies as the host's would: the
  // plugin's RUNPATH and /etc/ld.so.cache need nothing from us, LD_LIBRARY_PATH must be handed on
  // (the child's environment is otherwise only ours). Read now, so a host that sets it before
  // loading a plugin is heard.
  const char* host_path = std::getenv("LD_LIBRARY_PATH");
  const std::string library_path = host_path ? std::string("LD_LIBRARY_PATH=") + host_path : std::string();
  const std::string parent = std::to_string(getpid());
  // The child's stdout and stderr are its own output channel (domain/output.h), never the host's.
  auto output = WARD_TRY(detail::OutputPipes::open());
  // The reaper, which watches the child anyway, checks its CPU rate (reaper.h).
  st_->cpu_rate_cores = pol.cpu_rate_cores();
  st_->cpu_rate_window_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(pol.cpu_rate_window()).count());
  st_->growth_bytes = pol.memory_growth_bytes();
  st_->growth_window_ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(pol.memory_growth_window()).count());
  WARD_TRY(detail::Reaper::get().spawn(st_, [&]() -> Result<pid_t> {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd, w::kArenaFd);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, output.child_end(1), 1);
    posix_spawn_file_actions_adddup2(&fa, output.child_end(2), 2);
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
    char* envp[] = {const_cast<char*>(audit.c_str()), const_cast<char*>(plugin_env.c_str()),
                    host_path ? const_cast<char*>(library_path.c_str()) : nullptr, nullptr};
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, helper.c_str(), &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) return fail(Errc::load_failed, "posix_spawn " + helper + ": " + std::strerror(rc));
    return pid;
  }));
  if (auto r = detail::attach_output(std::move(output), name(), pol, st_->pidfd); !r)
    return std::unexpected(fail_with(r.error()));

  return {};
}

// Hands the child its filter and waits for it to load the plugin.
Result<void> ProcessDomain::await_ready() {
  const Policy& pol = policy();
  // The filter can name the child's pid now (signals may target only itself).
  auto filter = detail::compile_filter(pol, st_->pid);
  if (!filter) return std::unexpected(fail_with(filter.error()));
  if (filter->size() * sizeof(sock_filter) > kFilterReserve) return std::unexpected(fail_with(fail(Errc::load_failed, "seccomp filter too large").error()));
  std::memcpy(base_ + filter_off_, filter->data(), filter->size() * sizeof(sock_filter));
  ctl_->filter_len = static_cast<std::uint32_t>(filter->size());
  const std::uint64_t handed_over = detail::fast_ns();
  ctl_->boot_ready.store(1, std::memory_order_release);
  w::futex_wake(&ctl_->boot_ready);

  auto ready = WARD_TRY(wait_child("<load>", static_cast<std::uint64_t>(pol.load_timeout().count()), handed_over));
  if (ready.kind == w::MsgKind::load_error) {
    Error e;
    e.kind = Errc::load_failed;
    e.detail = st_->child_text();
    return std::unexpected(fail_with(std::move(e)));
  }
  if (ready.kind != w::MsgKind::ready)
    return std::unexpected(fail_with(fail(Errc::violation, "unexpected message while loading").error()));
  // Read once; see channel.h for why the child's word is enough here. A child asked for a fixed
  // address has mapped there or failed to load; claiming otherwise breaks only its own pointers.
  mapped_at_ = ctl_->mapped_at;
  if (mapped_at_ % 4096 != 0 || (spec().arena_at != 0 && mapped_at_ != spec().arena_at))
    return std::unexpected(fail_with(fail(Errc::violation, "reported an impossible arena address").error()));
  if (heap_off_ < size_)
    attach_sandbox({base_ + heap_off_, heap_off_, mapped_at_ + heap_off_}, size_ - heap_off_);
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
Result<w::Msg> ProcessDomain::wait_child(std::string_view function, std::uint64_t budget_ns, std::uint64_t handed_over) {
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

std::uint64_t ProcessDomain::service_time_ns() const {
  // `since` is cleared before `total` grows, so a reader errs on the low side, never double-counts.
  const std::uint64_t since = service_since_.load(std::memory_order_acquire);
  const std::uint64_t total = service_ns_.load(std::memory_order_acquire);
  const std::uint64_t now = detail::fast_ns();
  return total + (since != 0 && now > since ? now - since : 0);
}

Result<void> ProcessDomain::serve_upcall(const w::Msg& m, std::uint64_t& handed_back) {
  auto fn = WARD_TRY(service(m.table, m.fn));
  const std::uint64_t nslots = (fn)->nparams + 1;
  if (m.frame_off < data_off_ || m.frame_off > heap_off_ || nslots * sizeof(sc::Slot) > heap_off_ - m.frame_off ||
      m.frame_off % alignof(sc::Slot) != 0)
    return fail(Errc::violation, "upcall frame outside the arena");
  std::uint64_t top = std::max<std::uint64_t>(m.top, m.frame_off + nslots * sizeof(sc::Slot));
  if (top > heap_off_) return fail(Errc::violation, "upcall frame top outside the arena");
  const std::uint64_t saved = top_;
  top_ = std::max(top_, top);
  Upcall up(*this, view(), m.table, m.fn, m.frame_off, top_);
  // Threads waiting for this domain watch how long its holder sits in host services (deadlock
  // detection, see begin()); only the outermost service is timed, nested ones lie inside it.
  const bool outermost = service_depth_++ == 0;
  const std::uint64_t started = handed_back;  // when the host noticed the upcall
  if (outermost) {
    service_label_.store((std::uint64_t{m.table} << 32) | m.fn, std::memory_order_relaxed);
    service_since_.store(started, std::memory_order_release);
  }
  auto r = run_service(up);
  handed_back = detail::fast_ns();
  if (outermost) {
    service_since_.store(0, std::memory_order_release);
    service_ns_.fetch_add(handed_back - started, std::memory_order_acq_rel);
  }
  --service_depth_;
  top_ = saved;
  if (!r) return r;
  if (st_->failed.load(std::memory_order_acquire)) return {};  // nested call failed: reported by caller
  w::Msg reply{};
  reply.kind = w::MsgKind::upret;
  reply.table = m.table;
  reply.fn = m.fn;
  reply.frame_off = m.frame_off;
  reply.top = up.top();
  reply.ret = up.result();
  ctl_->to_child.msg = reply;
  w::ring(ctl_->to_child);
  return {};
}

Result<bool> ProcessDomain::heartbeat(std::chrono::nanoseconds timeout) {
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
    e.plugin = name();
    if (e.kind == Errc::hung) e.detail = "stopped answering heartbeats; the extension was killed";
    return std::unexpected(std::move(e));
  }
  if (reply->kind != w::MsgKind::pong) {
    (void)fail_with(fail(Errc::violation, "malformed heartbeat answer").error());
    return std::unexpected(current_failure("<heartbeat>", false));
  }
  return true;
}

// ---- checkpoints (checkpoint_area.h) ------------------------------------------------------------

Result<void> ProcessDomain::checkpoint_step(w::MsgKind kind, w::MsgKind want, std::chrono::nanoseconds timeout) {
  const char* label = kind == w::MsgKind::checkpoint ? "<checkpoint>" : "<restore>";
  w::Msg m{};
  m.kind = kind;
  ctl_->to_child.msg = m;
  const std::uint64_t handed_over = detail::fast_ns();
  w::ring(ctl_->to_child);
  const w::Msg reply = WARD_TRY(wait_child(label, static_cast<std::uint64_t>(timeout.count()), handed_over));
  if (reply.kind != want)
    return std::unexpected(fail_with(fail(Errc::violation, std::string("malformed answer to ") + label).error()));
  const auto* area = reinterpret_cast<const w::CkptArea*>(base_ + ckpt_off_);
  Error e;
  e.plugin = name();
  e.function = label;
  switch (reply.ret.a) {
    case 0:
      return {};
    case w::kCkptRefused: {
      const std::uint32_t why = area->refused;  // read once
      e.kind = Errc::misuse;
      e.detail = why == w::kCkptTls ? "not checkpointable: the plugin (or a library it loaded) has thread-local "
                                      "storage, which a checkpoint cannot capture"
                                    : "not checkpointable: the plugin's objects have more writable segments than a "
                                      "checkpoint records";
      return std::unexpected(std::move(e));
    }
    case w::kCkptFull:
      e.kind = Errc::limit;
      e.detail = "the checkpoint does not fit: heap and data exceed the checkpointable heap of " +
                 std::to_string(ckpt_size_) + " bytes";
      return std::unexpected(std::move(e));
    default:
      e.kind = Errc::load_failed;
      e.detail = "the checkpoint cannot be restored into this instance: its plugin loaded at other addresses";
      return std::unexpected(fail_with(std::move(e)));
  }
}

Result<std::vector<std::byte>> ProcessDomain::checkpoint(std::chrono::nanoseconds timeout) {
  if (ckpt_size_ == 0) return fail(Errc::misuse, "not started checkpointable (Spec::checkpoint_bytes is 0)");
  std::unique_lock<std::recursive_mutex> lock(mu_);
  if (depth_ > 0) return fail(Errc::misuse, "checkpoint during a call (from a host service?): a checkpoint needs an idle extension");
  if (st_->failed.load(std::memory_order_acquire)) return std::unexpected(current_failure("<checkpoint>", true));
  WARD_TRY(checkpoint_step(w::MsgKind::checkpoint, w::MsgKind::checkpointed, timeout));
  // Read once; the child's words only bound what is copied, within the area.
  const auto* area = reinterpret_cast<const w::CkptArea*>(base_ + ckpt_off_);
  const std::uint64_t heap_top = area->heap_top, image_off = area->image_off, image_len = area->image_len;
  if (heap_top > ckpt_size_ || image_off > ckpt_size_ || image_len > ckpt_size_ - image_off)
    return std::unexpected(fail_with(fail(Errc::violation, "checkpoint area with impossible bounds").error()));
  const std::uint64_t end = std::max(heap_top, image_off + image_len);
  std::vector<std::byte> state(end);
  std::memcpy(state.data(), base_ + ckpt_off_, end);
  return state;
}

Result<void> ProcessDomain::restore(const std::vector<std::byte>& state, std::chrono::nanoseconds timeout) {
  if (ckpt_size_ == 0) return fail(Errc::misuse, "not started checkpointable (Spec::checkpoint_bytes is 0)");
  if (state.size() < sizeof(w::CkptArea) || state.size() > ckpt_size_)
    return fail(Errc::misuse, "a checkpoint of " + std::to_string(state.size()) + " bytes cannot be restored into a " +
                                  std::to_string(ckpt_size_) + "-byte checkpointable heap");
  std::unique_lock<std::recursive_mutex> lock(mu_);
  if (depth_ > 0) return fail(Errc::misuse, "restore during a call");
  if (st_->failed.load(std::memory_order_acquire)) return std::unexpected(current_failure("<restore>", true));
  std::memcpy(base_ + ckpt_off_, state.data(), state.size());
  return checkpoint_step(w::MsgKind::restore, w::MsgKind::restored, timeout);
}

// ---- Call -----------------------------------------------------------------------------------------
Result<Call> ProcessDomain::begin(std::uint32_t fn) {
  std::unique_lock<std::recursive_mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock())
    WARD_TRY(wait_for_channel(lock, fn));
  if (st_->failed.load(std::memory_order_acquire)) return std::unexpected(current_failure(fn_label(0, fn), true));
  if (depth_ >= policy().max_nesting()) {
    Error e = fail(Errc::limit, "calls nested " + std::to_string(depth_) +
                                    " deep on this thread (host -> extension -> host service -> ...); Policy "
                                    "max_nesting is " + std::to_string(policy().max_nesting()))
                  .error();
    e.plugin = name();
    e.function = fn_label(0, fn);
    return std::unexpected(std::move(e));
  }
  ++depth_;
  lock.release();  // end() unlocks
  return make_call(fn, view(), &top_);
}

// Another thread holds the channel. Waiting is fine while it runs extension code (its call
// budgets bound that); time it spends in host services is charged to this waiter's patience,
// because a host service that waits for this thread would never come back.
Result<void> ProcessDomain::wait_for_channel(std::unique_lock<std::recursive_mutex>& lock, std::uint32_t fn) {
  const std::uint64_t patience = static_cast<std::uint64_t>(policy().timeout().count());
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
    // service_time_ns() errs low while a service ends (see there), so a later reading can be
    // below `start`: clamp, or the difference wraps to 584 years and a healthy wait is refused as
    // a deadlock (`ward bench soak` found this under load with kills).
    const std::uint64_t now_in = service_time_ns();
    const std::uint64_t in_services = now_in > start ? now_in - start : 0;
    if (in_services < patience) continue;
    const std::uint64_t label = service_label_.load(std::memory_order_relaxed);
    Error e = fail(Errc::misuse,
                   "waited for the domain while another thread spent " + std::to_string(in_services / 1000000) +
                       " ms inside host service " + fn_label(static_cast<std::uint32_t>(label >> 32),
                                                             static_cast<std::uint32_t>(label)) +
                       " (more than the call timeout): a host service that waits for a thread calling the "
                       "same domain deadlocks, since calls into one domain are serialized")
                  .error();
    e.plugin = name();
    e.function = fn_label(0, fn);
    return std::unexpected(std::move(e));
  }
}

// The call holds mu_ (taken in begin(), released here, both on the calling thread).
void ProcessDomain::end(Call&) noexcept {
  const bool outermost = --depth_ == 0;
  mu_.unlock();
  if (outermost && waiters_.load(std::memory_order_seq_cst) != 0) {
    std::lock_guard<std::mutex> g(wait_mu_);
    wait_cv_.notify_all();
  }
}

Result<sc::Slot> ProcessDomain::invoke(Call& c, std::uint64_t frame_off) {
  w::Msg m{};
  m.kind = w::MsgKind::call;
  m.table = static_cast<std::uint16_t>(c.table());  // [deep] an object call names its table
  m.fn = c.fn();
  m.frame_off = frame_off;
  m.frame_len = top_ - frame_off;
  m.top = top_;
  ctl_->to_child.msg = m;
  const std::uint64_t handed_over = detail::fast_ns();
  w::ring(ctl_->to_child);
  const std::string& label = table(c.table()).fn_names[c.fn()];
  auto reply = wait_child(label, static_cast<std::uint64_t>(policy().timeout().count()), handed_over);
  if (!reply) return std::unexpected(c.decorate(reply.error()));
  if (reply->kind != w::MsgKind::ret || reply->frame_off != frame_off)
    return std::unexpected(c.violation("malformed reply from the extension"));
  return reply->ret;
}

}  // namespace ward
