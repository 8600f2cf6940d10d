// ward-helper: the small executable a process domain runs in. The host starts it with exec (so
// the child is a clean image even when the host is multithreaded), with the shared arena on
// descriptor 3 and LD_AUDIT pointing at ward's audit module.
//
// Start-up, in order: parent-death signal, not dumpable (untraceable), parent check; close stray descriptors; rlimits;
// map the arena; build the libffi call descriptions and the host-service trampolines from the
// schema; install the SIGSYS reporter; wait for the host's filter; dlopen the plugin (the audit
// module installs the seccomp filter after mapping and before any plugin code); confirm the
// filter is on; resolve and call the entry; report ready. Then serve calls until killed.
//
// The helper trusts the host and nothing else. It is not built with sanitizers: it interposes
// malloc to report allocation failures.
#include <dlfcn.h>
#include <ffi.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "ward/process/doorbell.h"
#include "ward/process/channel.h"

extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);
extern "C" void* __libc_memalign(size_t, size_t);

namespace w = ward::wire;
namespace sc = ward::schema;

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
std::uint64_t g_arena_size = 0;
w::Control* g_ctl = nullptr;
std::uint64_t g_top = 0;  // first free arena byte for frames this side allocates

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

void note_alloc_failure(size_t n) {
  if (g_ctl && n) {
    std::uint64_t expected = 0;
    g_ctl->fault.alloc_failed.compare_exchange_strong(expected, n);
  }
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

// ---- libffi descriptions ------------------------------------------------------------------------
ffi_type* scalar_type(sc::Kind k) {
  switch (k) {
    case sc::Kind::void_: return &ffi_type_void;
    case sc::Kind::i8: return &ffi_type_sint8;
    case sc::Kind::u8: return &ffi_type_uint8;
    case sc::Kind::i16: return &ffi_type_sint16;
    case sc::Kind::u16: return &ffi_type_uint16;
    case sc::Kind::i32: return &ffi_type_sint32;
    case sc::Kind::u32: return &ffi_type_uint32;
    case sc::Kind::i64: return &ffi_type_sint64;
    case sc::Kind::u64: return &ffi_type_uint64;
    case sc::Kind::f32: return &ffi_type_float;
    case sc::Kind::f64: return &ffi_type_double;
    case sc::Kind::cstring:
    case sc::Kind::buffer:
    case sc::Kind::services: return &ffi_type_pointer;
    case sc::Kind::record: return nullptr;
  }
  return nullptr;
}

ffi_type* token_type(sc::Tok t) {
  switch (t) {
    case sc::Tok::i8: return &ffi_type_sint8;
    case sc::Tok::u8: return &ffi_type_uint8;
    case sc::Tok::i16: return &ffi_type_sint16;
    case sc::Tok::u16: return &ffi_type_uint16;
    case sc::Tok::i32: return &ffi_type_sint32;
    case sc::Tok::u32: return &ffi_type_uint32;
    case sc::Tok::i64: return &ffi_type_sint64;
    case sc::Tok::u64: return &ffi_type_uint64;
    case sc::Tok::f32: return &ffi_type_float;
    case sc::Tok::f64: return &ffi_type_double;
    default: return nullptr;
  }
}

// Builds a struct ffi_type from layout tokens starting after a `begin`; advances `i` past the
// matching `close`. Allocations live as long as the process.
ffi_type* record_type(const sc::Tok* toks, std::size_t& i) {
  ffi_type* elems[sc::kMaxLayout + 1];
  std::size_t n = 0;
  while (i < sc::kMaxLayout && toks[i] != sc::Tok::close && toks[i] != sc::Tok::end) {
    ffi_type* e = nullptr;
    if (toks[i] == sc::Tok::begin) {
      ++i;
      e = record_type(toks, i);
    } else {
      e = token_type(toks[i]);
      ++i;
    }
    if (!e) load_error("schema", "bad struct layout");
    elems[n++] = e;
  }
  if (i < sc::kMaxLayout && toks[i] == sc::Tok::close) ++i;
  auto* t = new ffi_type{};
  t->type = FFI_TYPE_STRUCT;
  t->elements = new ffi_type*[n + 1];
  for (std::size_t k = 0; k < n; ++k) t->elements[k] = elems[k];
  t->elements[n] = nullptr;
  return t;
}

ffi_type* param_type(const sc::Param& p) {
  if (p.kind != sc::Kind::record) return scalar_type(p.kind);
  std::size_t i = 0;
  if (p.layout[0] != sc::Tok::begin) load_error("schema", "struct layout must start with begin");
  ++i;
  return record_type(p.layout, i);
}

struct FnRt {
  const sc::Fn* desc = nullptr;
  std::uint32_t table = 0;
  std::uint32_t index = 0;
  ffi_cif cif{};
  ffi_type* atypes[sc::kMaxParams]{};
  ffi_type* rtype = nullptr;
};

struct TableRt {
  const w::Table* desc = nullptr;
  FnRt* fns = nullptr;
  void* c_table = nullptr;  // services: the C struct of trampolines the plugin receives
};

TableRt g_tables[w::kMaxTables];
std::uint32_t g_ntables = 0;
const void* g_plugin_table = nullptr;

void upcall_handler(ffi_cif*, void* ret, void** args, void* user);

// The entry of a host service this domain was not granted: calling it is a policy violation
// (the call never reaches the host).
void ungranted_handler(ffi_cif*, void*, void**, void* user);

void build_fn(FnRt& f, const sc::Fn* desc, std::uint32_t table, std::uint32_t index) {
  f.desc = desc;
  f.table = table;
  f.index = index;
  if (desc->nparams > sc::kMaxParams) load_error("schema", "too many parameters");
  for (std::uint32_t i = 0; i < desc->nparams; ++i) {
    f.atypes[i] = param_type(desc->params[i]);
    if (!f.atypes[i]) load_error("schema", "bad parameter kind");
  }
  f.rtype = param_type(desc->ret);
  if (!f.rtype) load_error("schema", "bad return kind");
  if (ffi_prep_cif(&f.cif, FFI_DEFAULT_ABI, desc->nparams, f.rtype, f.atypes) != FFI_OK)
    load_error("schema", "libffi rejected a signature");
}

// libffi (Debian 12's, at least) places closures, code and data together, in anonymous memory
// mapped writable and executable, and the plugin receives pointers into it: left so, it could
// overwrite a stub with its own code and run it, past the filter's PROT_EXEC rule. Nothing writes
// a closure after it is prepared, so once all are built their pages become read+execute, before
// the plugin is loaded (and before the filter, which would forbid the PROT_EXEC this needs).
// Closures whose code lies apart from their data (libffi's other modes) are never writable and
// executable at once and are left alone; the audit module refuses to load a plugin while any
// mapping still is.
void seal_closures(void* const* closures, std::size_t n) {
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  for (std::size_t i = 0; i < n; ++i) {
    const auto start = reinterpret_cast<std::uintptr_t>(closures[i]) & ~(page - 1);
    const auto end = (reinterpret_cast<std::uintptr_t>(closures[i]) + sizeof(ffi_closure) + page - 1) & ~(page - 1);
    if (mprotect(reinterpret_cast<void*>(start), end - start, PROT_READ | PROT_EXEC) != 0)
      load_error("libffi", "cannot make the host-service stubs read-only");
  }
}

void build_tables() {
  const auto* schema = reinterpret_cast<const w::Schema*>(g_arena + g_ctl->schema_off);
  if (schema->ntables == 0 || schema->ntables > w::kMaxTables) load_error("schema", "bad table count");
  g_ntables = schema->ntables;
  void* closures[w::kMaxTables * sc::kMaxFns];
  std::size_t nclosures = 0;
  for (std::uint32_t t = 0; t < g_ntables; ++t) {
    const w::Table& td = schema->tables[t];
    TableRt& rt = g_tables[t];
    rt.desc = &td;
    rt.fns = new FnRt[td.nfns ? td.nfns : 1];
    const auto* fns = reinterpret_cast<const sc::Fn*>(g_arena + td.fns_off);
    for (std::uint32_t i = 0; i < td.nfns; ++i) build_fn(rt.fns[i], &fns[i], t, i);
    if (t == 0) continue;
    // A host service table: every declared entry becomes a libffi closure that crosses back into
    // the host. Undeclared entries stay null, as they would be in an unfilled C struct.
    auto* table = static_cast<unsigned char*>(std::calloc(1, td.struct_size ? td.struct_size : 1));
    for (std::uint32_t i = 0; i < td.nfns; ++i) {
      void* code = nullptr;
      auto* cl = static_cast<ffi_closure*>(ffi_closure_alloc(sizeof(ffi_closure), &code));
      if (!cl) load_error("libffi", "cannot allocate a closure");
      if (nclosures == sizeof closures / sizeof closures[0]) load_error("schema", "too many host services");
      if (code == cl) closures[nclosures++] = cl;
      const bool granted = (fns[i].flags & sc::kFnGranted) != 0;
      if (ffi_prep_closure_loc(cl, &rt.fns[i].cif, granted ? upcall_handler : ungranted_handler, &rt.fns[i], code) != FFI_OK)
        load_error("libffi", "cannot prepare a closure");
      if (fns[i].offset + sizeof(void*) > td.struct_size) load_error("schema", "function offset out of range");
      std::memcpy(table + fns[i].offset, &code, sizeof code);
    }
    rt.c_table = table;
  }
  seal_closures(closures, nclosures);
}

// ---- the channel ------------------------------------------------------------------------------
void* at(std::uint64_t off) { return off == w::kNull ? nullptr : g_arena + off; }

bool in_arena(const void* p, std::uint64_t n) {
  const auto* c = static_cast<const unsigned char*>(p);
  return c >= g_arena && static_cast<std::uint64_t>(c - g_arena) <= g_arena_size &&
         n <= g_arena_size - static_cast<std::uint64_t>(c - g_arena);
}

// Reserves n bytes on the frame stack; an arena too small for what the plugin passes is a limit
// the plugin hit, reported like an allocation failure.
std::uint64_t reserve(std::uint64_t n, std::uint64_t align = 16) {
  const std::uint64_t off = w::align_up(g_top, align);
  if (off > g_arena_size || n > g_arena_size - off) {
    note_alloc_failure(n ? n : 1);
    std::snprintf(g_ctl->fault.text, sizeof g_ctl->fault.text, "arena exhausted: %llu bytes needed",
                  static_cast<unsigned long long>(n));
    die(w::kHelperExitArena);
  }
  g_top = off + n;
  return off;
}

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
    die(w::kHelperExitProtocol);  // protocol error: the host never does this
  }
}


std::uint64_t scalar_bits(const void* p, std::uint32_t size) {
  std::uint64_t v = 0;
  std::memcpy(&v, p, size);
  return v;
}

void serve_call(const w::Msg& m) {
  const std::uint64_t saved_top = g_top;
  g_top = m.top;
  if (m.table != 0 || m.fn >= g_tables[0].desc->nfns) die(w::kHelperExitProtocol);
  FnRt& f = g_tables[0].fns[m.fn];
  const sc::Fn& d = *f.desc;
  auto* slots = static_cast<sc::Slot*>(at(m.frame_off));
  sc::Slot* params = slots + 1;
  void* avalues[sc::kMaxParams];
  void* ptrs[sc::kMaxParams];
  for (std::uint32_t i = 0; i < d.nparams; ++i) {
    const sc::Param& p = d.params[i];
    switch (p.kind) {
      case sc::Kind::record: avalues[i] = at(params[i].a); break;
      case sc::Kind::cstring:
      case sc::Kind::buffer:
        ptrs[i] = at(params[i].a);
        avalues[i] = &ptrs[i];
        break;
      case sc::Kind::services:
        ptrs[i] = (params[i].a == w::kNull || params[i].a >= g_ntables) ? nullptr : g_tables[params[i].a].c_table;
        avalues[i] = &ptrs[i];
        break;
      default: avalues[i] = &params[i].a; break;
    }
  }
  void* fnptr = nullptr;
  std::memcpy(&fnptr, static_cast<const unsigned char*>(g_plugin_table) + d.offset, sizeof fnptr);
  sc::Slot r{0, 0};
  if (d.ret.kind == sc::Kind::record) {
    const std::uint64_t off = reserve(d.ret.size);
    ffi_call(&f.cif, FFI_FN(fnptr), at(off), avalues);
    r.a = off;
    r.b = d.ret.size;
  } else {
    alignas(16) unsigned char rv[16] = {};
    ffi_call(&f.cif, FFI_FN(fnptr), rv, avalues);
    if (d.ret.kind == sc::Kind::cstring) {
      const char* s = nullptr;
      std::memcpy(&s, rv, sizeof s);
      if (!s) {
        r.a = w::kNull;
        r.b = 0;
      } else {
        const std::size_t len = std::strlen(s);
        if (in_arena(s, len + 1)) {
          r.a = static_cast<std::uint64_t>(reinterpret_cast<const unsigned char*>(s) - g_arena);
        } else {
          r.a = reserve(len + 1, 1);
          std::memcpy(at(r.a), s, len + 1);
        }
        r.b = len;
      }
    } else if (d.ret.kind != sc::Kind::void_) {
      r.a = scalar_bits(rv, d.ret.size);
      r.b = 0;
    }
  }
  w::Msg reply{};
  reply.ret = r;
  reply.kind = w::MsgKind::ret;
  reply.frame_off = m.frame_off;
  reply.frame_len = m.frame_len;
  reply.top = g_top;
  g_top = saved_top;
  send_up(reply);
}

// The plugin called a host service through a trampoline: marshal into a frame, cross, wait.
void upcall_handler(ffi_cif*, void* ret, void** args, void* user) {
  FnRt& f = *static_cast<FnRt*>(user);
  const sc::Fn& d = *f.desc;
  const std::uint64_t saved_top = g_top;
  const std::uint64_t frame = reserve(sizeof(sc::Slot) * (d.nparams + 1));
  auto* slots = static_cast<sc::Slot*>(at(frame));
  std::memset(slots, 0, sizeof(sc::Slot) * (d.nparams + 1));
  sc::Slot* params = slots + 1;
  struct CopyBack { void* dst; std::uint64_t off; std::uint64_t n; } back[sc::kMaxParams];
  std::size_t nback = 0;
  for (std::uint32_t i = 0; i < d.nparams; ++i) {
    const sc::Param& p = d.params[i];
    switch (p.kind) {
      case sc::Kind::record: {
        const std::uint64_t off = reserve(p.size);
        std::memcpy(at(off), args[i], p.size);
        params[i].a = off;
        params[i].b = p.size;
        break;
      }
      case sc::Kind::cstring: {
        const char* s = *static_cast<const char* const*>(args[i]);
        if (!s) {
          params[i].a = w::kNull;
          break;
        }
        const std::size_t len = std::strlen(s);
        if (in_arena(s, len + 1)) {
          params[i].a = static_cast<std::uint64_t>(reinterpret_cast<const unsigned char*>(s) - g_arena);
        } else {
          params[i].a = reserve(len + 1, 1);
          std::memcpy(at(params[i].a), s, len + 1);
        }
        params[i].b = len;
        break;
      }
      case sc::Kind::buffer: {
        void* ptr = *static_cast<void* const*>(args[i]);
        std::uint64_t count = 1;
        if (p.count_arg != 0xff) count = scalar_bits(args[p.count_arg], d.params[p.count_arg].size);
        const std::uint64_t n = count * p.size;  // the host re-checks for overflow
        if (!ptr) {
          params[i].a = w::kNull;
          params[i].b = n;
          break;
        }
        if (in_arena(ptr, n)) {
          params[i].a = static_cast<std::uint64_t>(static_cast<unsigned char*>(ptr) - g_arena);
        } else {
          params[i].a = reserve(n);
          if (p.dir != sc::Dir::out) std::memcpy(at(params[i].a), ptr, n);
          if (p.dir != sc::Dir::in) back[nback++] = {ptr, params[i].a, n};
        }
        params[i].b = n;
        break;
      }
      case sc::Kind::services: params[i].a = w::kNull; break;
      default: params[i].a = scalar_bits(args[i], p.size); break;
    }
  }
  w::Msg m{};
  m.kind = w::MsgKind::upcall;
  m.table = static_cast<std::uint16_t>(f.table);
  m.fn = f.index;
  m.frame_off = frame;
  m.frame_len = g_top - frame;
  m.top = g_top;
  send_up(m);
  const w::Msg answer = wait_host(w::MsgKind::upret);
  for (std::size_t k = 0; k < nback; ++k) std::memcpy(back[k].dst, at(back[k].off), back[k].n);
  const sc::Slot r = answer.ret;
  switch (d.ret.kind) {
    case sc::Kind::void_: break;
    case sc::Kind::record: std::memcpy(ret, at(r.a), d.ret.size); break;
    case sc::Kind::cstring: {
      const char* s = static_cast<const char*>(at(r.a));
      std::memcpy(ret, &s, sizeof s);
      break;
    }
    case sc::Kind::f32:
    case sc::Kind::f64: std::memcpy(ret, &r.a, d.ret.size); break;
    case sc::Kind::i8: *static_cast<ffi_sarg*>(ret) = static_cast<std::int8_t>(r.a); break;
    case sc::Kind::i16: *static_cast<ffi_sarg*>(ret) = static_cast<std::int16_t>(r.a); break;
    case sc::Kind::i32: *static_cast<ffi_sarg*>(ret) = static_cast<std::int32_t>(r.a); break;
    case sc::Kind::u8: *static_cast<ffi_arg*>(ret) = static_cast<std::uint8_t>(r.a); break;
    case sc::Kind::u16: *static_cast<ffi_arg*>(ret) = static_cast<std::uint16_t>(r.a); break;
    case sc::Kind::u32: *static_cast<ffi_arg*>(ret) = static_cast<std::uint32_t>(r.a); break;
    default: std::memcpy(ret, &r.a, 8); break;
  }
  g_top = saved_top;
}

void ungranted_handler(ffi_cif*, void*, void**, void* user) {
  const FnRt& f = *static_cast<const FnRt*>(user);
  if (g_ctl->fault.violation.load(std::memory_order_seq_cst) == 0) {
    g_ctl->fault.ungranted_table = f.table;
    g_ctl->fault.ungranted_fn = f.index;
    note_violation(w::kViolationUngranted);
  }
  die_of_sigsys();
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

// ---- allocation-failure reporting (interposes the plugin's malloc: executables come first) ----
extern "C" {
__attribute__((visibility("default"))) void* malloc(size_t n) {
  void* p = __libc_malloc(n);
  if (!p) note_alloc_failure(n);
  return p;
}
__attribute__((visibility("default"))) void* calloc(size_t a, size_t b) {
  void* p = __libc_calloc(a, b);
  if (!p) note_alloc_failure((a && b) ? a * b : 1);
  return p;
}
__attribute__((visibility("default"))) void* realloc(void* q, size_t n) {
  void* p = __libc_realloc(q, n);
  if (!p && n) note_alloc_failure(n);
  return p;
}
__attribute__((visibility("default"))) void* aligned_alloc(size_t a, size_t n) {
  void* p = __libc_memalign(a, n);
  if (!p) note_alloc_failure(n);
  return p;
}
__attribute__((visibility("default"))) int posix_memalign(void** out, size_t a, size_t n) {
  if (a < sizeof(void*) || (a & (a - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(a, n);
  if (!p) {
    note_alloc_failure(n);
    return ENOMEM;
  }
  *out = p;
  return 0;
}
}

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
  // 3. The arena.
  void* head = mmap(nullptr, w::kControlSize, PROT_READ | PROT_WRITE, MAP_SHARED, w::kArenaFd, 0);
  if (head == MAP_FAILED) return w::kHelperExitBadSetup;
  const auto* c0 = static_cast<const w::Control*>(head);
  if (c0->magic != w::kMagic || c0->version != w::kVersion) return w::kHelperExitBadSetup;
  g_arena_size = c0->arena_size;
  munmap(head, w::kControlSize);
  void* base = mmap(nullptr, g_arena_size, PROT_READ | PROT_WRITE, MAP_SHARED, w::kArenaFd, 0);
  if (base == MAP_FAILED) return w::kHelperExitBadSetup;
  g_arena = static_cast<unsigned char*>(base);
  g_ctl = static_cast<w::Control*>(base);
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
  build_tables();
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
  void* lib = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
  // A failed dlopen never reached the plugin's initialisers: report why it failed.
  if (!lib) load_error("dlopen", dlerror());
  if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2) load_error("sandbox", "the seccomp filter is not in force");
  dlerror();
  void* sym = dlsym(lib, entry);
  if (!sym) {
    const char* e = dlerror();
    load_error("missing entry symbol", e ? e : entry);
  }
  using EntryFn = const void* (*)();
  g_plugin_table = reinterpret_cast<EntryFn>(sym)();
  if (!g_plugin_table) load_error("entry", "the entry function returned a null table");
  // 9. Ready: serve calls until the host kills us.
  g_top = g_ctl->data_off;
  g_spin.set_max(g_ctl->spin_ns);
  g_seen_from_host = g_ctl->to_child.seq.load(std::memory_order_acquire);
  w::Msg ready{};
  ready.kind = w::MsgKind::ready;
  send_up(ready);
  for (;;) (void)wait_host(w::MsgKind::none);
}
