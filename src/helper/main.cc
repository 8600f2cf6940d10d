// ward-helper: the small executable a process domain runs in. The host starts it with exec (so
// the child is a clean image even when the host is multithreaded), with the shared arena on
// descriptor 3 and LD_AUDIT pointing at ward's audit module.
//
// Start-up, in order: parent-death signal, not dumpable (untraceable), parent check; close stray
// descriptors; rlimits; map the arena; build the libffi call descriptions and the host-service
// trampolines from the schema; install the SIGSYS reporter; wait for the host's filter; dlopen
// the plugin (the audit module installs the seccomp filter after mapping and before any plugin
// code); confirm the filter is on; resolve and check the entry's table, or bind a library's
// functions by symbol; report ready. Then serve calls until killed. A checkpointable extension's
// child (Control::ckpt_size) also runs without address-space randomization (it executes itself
// again to get it), allocates from the checkpoint area from the plugin's load on, and answers
// checkpoint/restore at its loop head (checkpoint.h).
//
// This file is the process half: bring-up and the channel (doorbells, nested calls, pings).
// Marshaling, both directions, is the callee library (callee.h) working over the arena; this
// file gives it the doorbell crossing and the process's answers to running out of arena and to
// ungranted services.
//
// The helper trusts the host and nothing else. It is not built with sanitizers: it interposes
// malloc to report allocation failures (malloc_hook.h).
#include <dlfcn.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <cstring>

#include "callee.h"
#include "checkpoint.h"
#include "malloc_hook.h"
#include "probe.h"
#include "ward/process/channel.h"
#include "ward/process/doorbell.h"

namespace w = ward::wire;
namespace sc = ward::schema;
namespace callee = ward::callee;

static_assert(offsetof(w::Control, filter_len) == 68, "audit.c hard-codes this offset");
static_assert(offsetof(w::Control, filter_off) == 72, "audit.c hard-codes this offset");
// audit.c reports refused objects the way load_error() below does, so it hard-codes these too.
static_assert(offsetof(w::Control, to_host) + offsetof(w::Doorbell, seq) == 192, "audit.c hard-codes this offset");
static_assert(offsetof(w::Control, to_host) + offsetof(w::Doorbell, sleeping) == 196, "audit.c hard-codes this offset");
static_assert(offsetof(w::Control, to_host) + offsetof(w::Doorbell, msg) + offsetof(w::Msg, kind) == 208,
              "audit.c hard-codes this offset");
static_assert(sizeof(w::MsgKind) == 2 && static_cast<int>(w::MsgKind::load_error) == 2, "audit.c hard-codes this value");
static_assert(offsetof(w::Control, fault) + offsetof(w::Fault, text) == 280, "audit.c hard-codes this offset");
static_assert(sizeof(w::Fault::text) == 512, "audit.c hard-codes this size");
static_assert(w::kHelperExitBadSetup == 120 && w::kArenaFd == 3, "audit.c hard-codes these values");

namespace {

unsigned char* g_arena = nullptr;
w::Control* g_ctl = nullptr;
callee::Callee* g_callee = nullptr;  // built in step 5

[[noreturn]] void die(int code) { syscall(SYS_exit_group, code); __builtin_unreachable(); }

// Records a load error for the host and exits.
[[noreturn]] void load_error(const char* what, const char* detail) {
  if (g_ctl) {
    std::snprintf(g_ctl->fault.text, sizeof g_ctl->fault.text, "%s%s%s", what, detail ? ": " : "",
                  detail ? detail : "");
    g_ctl->to_host.msg.kind = w::MsgKind::load_error;
    w::ring(g_ctl->to_host);
  }
  die(w::kHelperExitBadSetup);
}

// Ends the process by SIGSYS: the only exit the host reads as a policy violation, and one the
// extension cannot fake, because the filter traps any attempt to send SIGSYS or to handle it.
// Called inside on_sigsys (SIGSYS blocked there), the tgkill traps while SIGSYS is blocked, so
// the kernel forces the default action. Called elsewhere, it traps into on_sigsys, which ends
// here the first way.
[[noreturn]] void die_of_sigsys() {
  syscall(SYS_tgkill, getpid(), gettid(), SIGSYS);
  __builtin_trap();  // not reached; a crash rather than a normal exit if it ever were
}

// The fault record only qualifies a death by SIGSYS (which syscall, which service); the first
// qualifier written stays.
void note_violation(std::uint32_t kind) {
  if (!g_ctl) return;
  std::uint32_t none = 0;
  g_ctl->fault.violation.compare_exchange_strong(none, kind, std::memory_order_seq_cst);
}

void on_sigsys(int, siginfo_t* info, void*) {
  if (g_ctl && g_ctl->fault.violation.load(std::memory_order_seq_cst) == 0) {
    g_ctl->fault.syscall_nr = info->si_syscall;
    note_violation(w::kViolationSyscall);
  }
  die_of_sigsys();
}

// ---- the channel ------------------------------------------------------------------------------
std::uint32_t g_seen_from_host = 0;
w::SpinGovernor g_spin;

void serve_call(const w::Msg& m);

void send_up(const w::Msg& m) {
  g_ctl->to_host.msg = m;
  w::ring(g_ctl->to_host);
}

// Waits for the host's next message; serves nested calls until the one that answers us arrives.
w::Msg wait_host(w::MsgKind want) {
  for (;;) {
    const std::uint64_t spin = g_spin.budget(g_ctl->to_child, g_ctl->to_host);
    if (w::spin_for_change(g_ctl->to_child, g_seen_from_host, spin)) {
      g_spin.observe(0);
    } else {
      const std::uint64_t t0 = w::mono_ns();
      w::sleep_for_change(g_ctl->to_child, g_seen_from_host, 0);
      g_spin.observe(spin + (w::mono_ns() - t0));
    }
    g_seen_from_host = g_ctl->to_child.seq.load(std::memory_order_acquire);
    const w::Msg m = g_ctl->to_child.msg;
    if (m.kind == want) return m;
    if (m.kind == w::MsgKind::call) {
      serve_call(m);
      continue;
    }
    if (m.kind == w::MsgKind::ping) {
      w::Msg pong{};
      pong.kind = w::MsgKind::pong;
      send_up(pong);
      continue;
    }
    // Checkpoints come only at the loop head (the host holds the channel: no call is running
    // here), so no plugin frame is live and the state is the heap and the segments alone.
    if ((m.kind == w::MsgKind::checkpoint || m.kind == w::MsgKind::restore) && want == w::MsgKind::none &&
        g_ctl->ckpt_size != 0) {
      w::Msg done{};
      const bool take = m.kind == w::MsgKind::checkpoint;
      done.kind = take ? w::MsgKind::checkpointed : w::MsgKind::restored;
      done.ret.a = take ? ward::helper::ckpt::take() : ward::helper::ckpt::restore();
      send_up(done);
      continue;
    }
    die(w::kHelperExitProtocol);  // protocol error: the host never does this
  }
}

void serve_call(const w::Msg& m) {
  if ((m.table != 0 && !g_callee->object_table(m.table)) || m.fn >= g_callee->nfns(m.table)) die(w::kHelperExitProtocol);
  std::uint64_t top = 0;
  const sc::Slot ret = g_callee->serve(m.table, m.fn, m.frame_off, m.top, top);
  w::Msg reply{};
  reply.ret = ret;
  reply.kind = w::MsgKind::ret;
  reply.frame_off = m.frame_off;
  reply.frame_len = m.frame_len;
  reply.top = top;
  send_up(reply);
}

// ---- what the callee asks of the process ------------------------------------------------------
// An arena too small for what the plugin passes is a limit the plugin hit, reported like an
// allocation failure.
[[noreturn]] void arena_exhausted(std::uint64_t n) {
  ward::helper::note_alloc_failure(n ? n : 1);
  std::snprintf(g_ctl->fault.text, sizeof g_ctl->fault.text, "arena exhausted: %llu bytes needed",
                static_cast<unsigned long long>(n));
  die(w::kHelperExitArena);
}

// The plugin called a granted host service: its frame is marshaled; cross and wait.
sc::Slot cross_to_host(void*, const callee::Upcall& u) {
  w::Msg m{};
  m.kind = w::MsgKind::upcall;
  m.table = static_cast<std::uint16_t>(u.table);
  m.fn = u.fn;
  m.frame_off = u.frame_off;
  m.frame_len = u.frame_len;
  m.top = u.top;
  send_up(m);
  return wait_host(w::MsgKind::upret).ret;
}

// The plugin called a host service this domain was not granted: a policy violation (the call
// never reaches the host).
[[noreturn]] void refuse_ungranted(void*, std::uint32_t table, std::uint32_t fn) {
  if (g_ctl->fault.violation.load(std::memory_order_seq_cst) == 0) {
    g_ctl->fault.ungranted_table = table;
    g_ctl->fault.ungranted_fn = fn;
    note_violation(w::kViolationUngranted);
  }
  die_of_sigsys();
}

// Step 5: the callee over the arena, with the schema the host left in the boot area.
void build_callee(std::uint64_t arena_size) {
  const auto* schema = reinterpret_cast<const w::Schema*>(g_arena + g_ctl->schema_off);
  if (schema->ntables == 0 || schema->ntables > w::kMaxTables) load_error("schema", "bad table count");
  callee::TableDesc tables[w::kMaxTables];
  for (std::uint32_t t = 0; t < schema->ntables; ++t) {
    const w::Table& td = schema->tables[t];
    tables[t].fns = {reinterpret_cast<const sc::Fn*>(g_arena + td.fns_off), td.nfns};
    tables[t].struct_size = td.struct_size;
  }
  // The frame stack ends where sandbox memory begins: frames never overwrite it, and a pointer
  // the extension passes into it is copied like any pointer into its own memory.
  const std::uint64_t frames_end = g_ctl->heap_off <= arena_size ? g_ctl->heap_off : arena_size;
  static callee::Callee the_callee(callee::MemoryView{g_arena, frames_end, g_ctl->data_off, arena_exhausted},
                                   callee::Host{nullptr, cross_to_host, refuse_ungranted});
  g_callee = &the_callee;
  if (auto built = g_callee->build({tables, schema->ntables}); !built) load_error(built.error().what, built.error().detail);
  g_callee->describe_structs({reinterpret_cast<const sc::Struct*>(g_arena + schema->structs_off), schema->nstructs},
                             schema->deep_max_bytes);
}

// ---- the extension's table ------------------------------------------------------------------
// What the schema says of table 0.
struct Table0 {
  const sc::Fn* fns;
  std::uint32_t nfns;
  std::uint32_t struct_size;
};
Table0 table0() {
  const auto* schema = reinterpret_cast<const w::Schema*>(g_arena + g_ctl->schema_off);
  return {reinterpret_cast<const sc::Fn*>(g_arena + schema->tables[0].fns_off), schema->tables[0].nfns,
          schema->tables[0].struct_size};
}

// A library of free functions: table 0 is built here, each function bound by its symbol.
const void* table_from_symbols(void* lib) {
  const Table0 t = table0();
  auto* table = static_cast<unsigned char*>(std::calloc(1, t.struct_size ? t.struct_size : 1));
  if (!table) load_error("library", "out of memory");
  for (std::uint32_t i = 0; i < t.nfns; ++i) {
    const char* name = reinterpret_cast<const char*>(g_arena + t.fns[i].symbol);
    dlerror();
    void* fn = dlsym(lib, name);
    if (!fn) load_error("missing symbol", name);
    std::memcpy(table + t.fns[i].offset, &fn, sizeof fn);
  }
  return table;
}

using ward::probe::copy_readable;
using ward::probe::in_executable_segment;

// A table returned by the entry function: checked to be what was declared (readable memory
// whose declared function pointers are null or point into loaded code), so a wrong entry
// symbol is a load error naming the problem, not a crash at the first call.
const void* table_from_entry(void* lib, const char* entry) {
  dlerror();
  void* sym = dlsym(lib, entry);
  if (!sym) {
    const char* e = dlerror();
    load_error("missing entry symbol", e ? e : entry);
  }
  if (!in_executable_segment(sym)) load_error("entry", "the entry symbol is not a function");
  using EntryFn = const void* (*)();
  const void* table = reinterpret_cast<EntryFn>(sym)();
  if (!table) load_error("entry", "the entry function returned a null table");
  const Table0 t = table0();
  auto* copy = static_cast<unsigned char*>(std::malloc(t.struct_size ? t.struct_size : 1));
  if (!copy) load_error("entry", "out of memory");
  if (!copy_readable(table, copy, t.struct_size))
    load_error("entry", "the entry function did not return a table: its result is not readable memory");
  for (std::uint32_t i = 0; i < t.nfns; ++i) {
    void* fn = nullptr;
    std::memcpy(&fn, copy + t.fns[i].offset, sizeof fn);
    if (fn && !in_executable_segment(fn)) {
      static char what[160];
      std::snprintf(what, sizeof what,
                    "the entry function did not return the declared table: function %u (at byte %u) is not code", i,
                    t.fns[i].offset);
      load_error("entry", what);
    }
  }
  std::free(copy);
  return table;
}

bool audit_module_loaded() {
  FILE* f = std::fopen("/proc/self/maps", "re");
  if (!f) return false;
  char line[4096];
  bool found = false;
  while (std::fgets(line, sizeof line, f))
    if (std::strstr(line, "libward-audit")) found = true;
  std::fclose(f);
  return found;
}

void set_limit(int which, std::uint64_t v) {
  if (v == 0) return;
  rlimit r{static_cast<rlim_t>(v), static_cast<rlim_t>(v)};
  if (which == RLIMIT_CPU) r.rlim_max = static_cast<rlim_t>(v + 1);  // SIGXCPU first, then SIGKILL
  if (setrlimit(which, &r) != 0) load_error("setrlimit", std::strerror(errno));
}

}  // namespace

int main(int argc, char** argv) {
  // 1. Die with the host; and if the host is already gone, do not load anything.
  if (argc < 2) return w::kHelperExitBadSetup;
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  // Not dumpable: no process without CAP_SYS_PTRACE can attach a tracer (which would receive the
  // child's exit before the host does, and could stop it at will) or read /proc/PID/mem.
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return w::kHelperExitBadSetup;
  if (getppid() != static_cast<pid_t>(std::strtol(argv[1], nullptr, 10))) return w::kHelperExitBadSetup;
  // 2. Nothing but stdio and the arena: descriptors leaked by the host must not reach the plugin.
  if (syscall(SYS_close_range, w::kArenaFd + 1, ~0u, 0) != 0) return w::kHelperExitBadSetup;
  // 3. The arena: where the host asks for it (a restart keeps the failed child's address, so
  // pointers the extension stored into sandbox memory stay valid), anywhere otherwise.
  void* head = mmap(nullptr, w::kControlSize, PROT_READ | PROT_WRITE, MAP_SHARED, w::kArenaFd, 0);
  if (head == MAP_FAILED) return w::kHelperExitBadSetup;
  g_ctl = static_cast<w::Control*>(head);  // for load_error until the whole arena is mapped
  if (g_ctl->magic != w::kMagic || g_ctl->version != w::kVersion) return w::kHelperExitBadSetup;
  // A checkpointable extension's child has the same layout in every instance (a checkpoint's
  // pointers must mean the same in the child it is restored into): without address-space
  // randomization, set for this process alone by executing the helper again (the pid, and so
  // the host's filter for it, stay).
  if (g_ctl->ckpt_size != 0) {
    const int persona = personality(0xffffffff);
    if (persona == -1) return w::kHelperExitBadSetup;
    if (!(persona & ADDR_NO_RANDOMIZE)) {
      if (personality(static_cast<unsigned long>(persona) | ADDR_NO_RANDOMIZE) == -1) return w::kHelperExitBadSetup;
      execv("/proc/self/exe", argv);
      return w::kHelperExitBadSetup;
    }
  }
  const std::uint64_t arena_size = g_ctl->arena_size;
  const std::uint64_t want = g_ctl->arena_at;
  void* base = want == 0 ? mmap(nullptr, arena_size, PROT_READ | PROT_WRITE, MAP_SHARED, w::kArenaFd, 0)
                         : mmap(reinterpret_cast<void*>(want), arena_size, PROT_READ | PROT_WRITE,
                                MAP_SHARED | MAP_FIXED_NOREPLACE, w::kArenaFd, 0);
  if (base == MAP_FAILED || (want != 0 && base != reinterpret_cast<void*>(want))) {
    // A kernel without MAP_FIXED_NOREPLACE takes the address as a hint and may map elsewhere.
    char what[96];
    std::snprintf(what, sizeof what, "cannot map the arena at 0x%llx, where the restarted instance had it",
                  static_cast<unsigned long long>(want));
    load_error(what, base == MAP_FAILED ? std::strerror(errno) : "the address is taken");
  }
  munmap(head, w::kControlSize);
  g_arena = static_cast<unsigned char*>(base);
  g_ctl = static_cast<w::Control*>(base);
  g_ctl->mapped_at = reinterpret_cast<std::uint64_t>(base);
  ward::helper::report_alloc_failures_to(&g_ctl->fault.alloc_failed);
  // 4. Limits (after the arena is mapped, which counts against the address-space limit).
  set_limit(RLIMIT_CORE, 0);
  set_limit(RLIMIT_AS, g_ctl->rlimit_as);
  set_limit(RLIMIT_CPU, g_ctl->rlimit_cpu);
  set_limit(RLIMIT_NOFILE, g_ctl->rlimit_nofile);
  // Files the plugin may write (only with the policy's file access) cannot fill a disk.
  const rlim_t fsize = g_ctl->rlimit_fsize == w::kNoLimit ? RLIM_INFINITY : static_cast<rlim_t>(g_ctl->rlimit_fsize);
  const rlimit fsize_limit{fsize, fsize};
  if (setrlimit(RLIMIT_FSIZE, &fsize_limit) != 0) load_error("setrlimit", std::strerror(errno));
  // 5. Stubs for both directions, before the sandbox (closures need executable mappings).
  build_callee(arena_size);
  // 6. Report forbidden system calls by number before dying.
  struct sigaction sa {};
  sa.sa_sigaction = on_sigsys;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSYS, &sa, nullptr);
  if (!audit_module_loaded()) load_error("sandbox", "the audit module (libward-audit.so) was not loaded");
  // 7. Wait for the filter the host compiled for this pid.
  while (g_ctl->boot_ready.load(std::memory_order_acquire) == 0)
    w::futex_wait_until(&g_ctl->boot_ready, 0, 0);
  // stdout is a pipe the host drains line by line: make printf("x\n") arrive when it is printed,
  // not when a 4 KiB buffer fills or never (a crash loses what is buffered). A buffer of our own
  // also spares the plugin's first printf the fstat/ioctl stdio would make to size one.
  static char stdout_buf[4096];
  std::setvbuf(stdout, stdout_buf, _IOLBF, sizeof stdout_buf);
  // 8. Load. The audit module turns the filter on between mapping and the first plugin code.
  const char* plugin = reinterpret_cast<const char*>(g_arena + g_ctl->plugin_off);
  const char* entry = reinterpret_cast<const char*>(g_arena + g_ctl->entry_off);
  // A checkpointable extension's heap is the checkpoint area from here on: what the plugin, its
  // constructors and the dynamic linker loading it allocate is what a checkpoint copies.
  const std::uint64_t ckpt_off = g_ctl->ckpt_off, ckpt_size = g_ctl->ckpt_size;
  if (ckpt_size != 0) {
    if (ckpt_off % 4096 != 0 || ckpt_off > arena_size || ckpt_size > arena_size - ckpt_off ||
        ckpt_size <= w::kCkptHeapStart)
      load_error("checkpoint", "bad checkpoint area");
    ward::helper::ckpt::begin(reinterpret_cast<w::CkptArea*>(g_arena + ckpt_off), ckpt_size);
  }
  void* lib = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
  // A failed dlopen never reached the plugin's initialisers: report why it failed.
  if (!lib) load_error("dlopen", dlerror());
  if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2) load_error("sandbox", "the seccomp filter is not in force");
  g_callee->bind(*entry ? table_from_entry(lib, entry) : table_from_symbols(lib));
  if (ckpt_size != 0) ward::helper::ckpt::loaded();
  // 9. Ready: serve calls until the host kills us.
  g_spin.set_max(g_ctl->spin_ns);
  g_seen_from_host = g_ctl->to_child.seq.load(std::memory_order_acquire);
  w::Msg ready{};
  ready.kind = w::MsgKind::ready;
  send_up(ready);
  for (;;) (void)wait_host(w::MsgKind::none);
}
