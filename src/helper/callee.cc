// The callee library (callee.h). One table over the parameter kinds says what each kind does in
// both directions; the rest walks a function's parameters and applies their rows.
#include "callee.h"

#include "deep_walk.h"

#include <ffi.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <type_traits>

// Exhaustiveness over schema::Kind rests on this: a kind without a row in the table must not
// compile, whatever flags the build passes.
#pragma GCC diagnostic error "-Wswitch"

namespace ward::callee {

namespace sc = ward::schema;

bool MemoryView::holds(const void* p, std::uint64_t n) const {
  const auto* c = static_cast<const unsigned char*>(p);
  return c >= base && static_cast<std::uint64_t>(c - base) <= size && n <= size - static_cast<std::uint64_t>(c - base);
}

std::uint64_t MemoryView::reserve(std::uint64_t n, std::uint64_t align) {
  const std::uint64_t off = sc::align_up(top, align);
  if (off > size || n > size - off) {
    out_of_space(n);
    __builtin_trap();  // out_of_space must not return: the codec has no way to fail a C call
  }
  top = off + n;
  return off;
}

void* Callee::service_table(std::uint64_t id) const { return id < ntables_ ? tables_[id].c_table : nullptr; }

namespace {

// An out-buffer of an upcall: after the host returns, its bytes go back to the extension's memory.
struct CopyBacks {
  struct One {
    void* dst;
    std::uint64_t off;
    std::uint64_t n;
  } at[sc::kMaxParams];
  std::size_t n = 0;
};

std::uint64_t scalar_bits(const void* p, std::uint32_t size) {
  std::uint64_t v = 0;
  std::memcpy(&v, p, size);
  return v;
}

// What one parameter kind does in each direction. "Serve" is the host calling the extension
// (slots in, result out); "upcall" is the extension calling a host service (arguments in, result
// back).
struct Row {
  ffi_type* ffi;  // how libffi passes it; null: built from the parameter's layout tokens
  // serve: the argument value libffi passes, from the slot; `hold` keeps a pointer for the call.
  void* (*slot_to_arg)(Callee&, sc::Slot& s, void*& hold);
  // upcall: the slot, from argument i of the extension's call; out-buffers add a copy-back.
  void (*arg_to_slot)(Callee&, const sc::Fn& d, std::uint32_t i, void* const* args, sc::Slot& s, CopyBacks& back);
  // serve: libffi writes the result into a frame reservation (else into a local buffer)...
  bool result_in_frame;
  // ... and the result slot is made from it.
  // (Returned by value, in registers: a slot written piecewise through memory and then read
  // whole stalls store forwarding on the crossing's critical path.)
  sc::Slot (*result_to_slot)(Callee&, const sc::Param& p, void* rv);
  // upcall: the value the extension's call returns, from the host's result slot.
  void (*slot_to_result)(Callee&, const sc::Param& p, const sc::Slot& r, void* ret);
  // serve, after the call: rewrites the parameter's slot (null: nothing to do).
  void (*after_call)(Callee&, const sc::Param& p, sc::Slot& s, void* passed);
};

// ---- the columns, by kind ----------------------------------------------------------------------
// Scalars travel as their bytes in `a` (little endian: a pointer to `a` is a pointer to the value).
void* bits_arg(Callee&, sc::Slot& s, void*&) { return &s.a; }
void bits_slot(Callee&, const sc::Fn& d, std::uint32_t i, void* const* args, sc::Slot& s, CopyBacks&) {
  s.a = scalar_bits(args[i], d.params[i].size);
}
sc::Slot bits_result_slot(Callee&, const sc::Param& p, void* rv) { return {scalar_bits(rv, p.size), 0}; }
// libffi wants a closure's integer results narrower than a register widened to ffi_arg/ffi_sarg.
template <class T>
void bits_result(Callee&, const sc::Param&, const sc::Slot& r, void* ret) {
  if constexpr (std::is_integral_v<T> && sizeof(T) < sizeof(ffi_arg))
    *static_cast<std::conditional_t<std::is_signed_v<T>, ffi_sarg, ffi_arg>*>(ret) = static_cast<T>(r.a);
  else
    std::memcpy(ret, &r.a, sizeof(T));
}

sc::Slot no_result_slot(Callee&, const sc::Param&, void*) { return {0, 0}; }
void no_result(Callee&, const sc::Param&, const sc::Slot&, void*) {}

// Records travel as a copy in the frame: offset in `a`, size in `b`.
void* record_arg(Callee& c, sc::Slot& s, void*&) { return c.view().at(s.a); }
void record_slot(Callee& c, const sc::Fn& d, std::uint32_t i, void* const* args, sc::Slot& s, CopyBacks&) {
  const std::uint32_t n = d.params[i].size;
  s.a = c.view().reserve(n);
  std::memcpy(c.view().at(s.a), args[i], n);
  s.b = n;
}
sc::Slot record_result_slot(Callee& c, const sc::Param& p, void* rv) { return {c.view().offset_of(rv), p.size}; }
void record_result(Callee& c, const sc::Param& p, const sc::Slot& r, void* ret) { std::memcpy(ret, c.view().at(r.a), p.size); }

// Strings and buffers the host sent are passed as pointers into the view.
void* pointer_arg(Callee& c, sc::Slot& s, void*& hold) {
  hold = c.view().at(s.a);
  return &hold;
}

// A string the extension gives the host: used in place when it already lies in the view, copied
// onto the frame stack otherwise; `b` is its length.
void string_slot(Callee& c, const char* s, sc::Slot& slot) {
  if (!s) {
    slot = {sc::kNull, 0};
    return;
  }
  MemoryView& v = c.view();
  const std::size_t len = std::strlen(s);
  if (v.holds(s, len + 1)) {
    slot.a = v.offset_of(s);
  } else {
    slot.a = v.reserve(len + 1, 1);
    std::memcpy(v.at(slot.a), s, len + 1);
  }
  slot.b = len;
}
void cstring_slot(Callee& c, const sc::Fn&, std::uint32_t i, void* const* args, sc::Slot& s, CopyBacks&) {
  string_slot(c, *static_cast<const char* const*>(args[i]), s);
}
sc::Slot cstring_result_slot(Callee& c, const sc::Param&, void* rv) {
  sc::Slot r{0, 0};
  const char* s = nullptr;
  std::memcpy(&s, rv, sizeof s);
  string_slot(c, s, r);
  return r;
}
void cstring_result(Callee& c, const sc::Param&, const sc::Slot& r, void* ret) {
  const char* s = static_cast<const char*>(c.view().at(r.a));
  std::memcpy(ret, &s, sizeof s);
}

// A buffer of `count` elements: the schema's constant times the count argument, if any (the
// sizes a host service may declare: iface/size.h). In place when it lies in the view; otherwise
// copied onto the frame stack (unless out-only) and copied back after (unless in-only). `b` is
// its byte count even when null. A negative or overflowing count is sent as a null buffer of
// ~0 bytes without touching the frame: the host computes the count from the same arguments and
// refuses it.
void buffer_slot(Callee& c, const sc::Fn& d, std::uint32_t i, void* const* args, sc::Slot& s, CopyBacks& back) {
  const sc::Param& p = d.params[i];
  void* ptr = *static_cast<void* const*>(args[i]);
  std::uint64_t count = p.count_const, n = 0;
  bool bad = false;
  if (p.count_arg != 0xff) {
    const sc::Param& cp = d.params[p.count_arg];
    const std::uint64_t v = scalar_bits(args[p.count_arg], cp.size);
    const bool is_signed = cp.kind == sc::Kind::i8 || cp.kind == sc::Kind::i16 || cp.kind == sc::Kind::i32 || cp.kind == sc::Kind::i64;
    bad = is_signed && (v >> (cp.size * 8 - 1)) != 0;
    bad = __builtin_mul_overflow(count, v, &count) || bad;
  }
  bad = __builtin_mul_overflow(count, std::uint64_t{p.size}, &n) || bad;
  if (bad) {
    s = {sc::kNull, ~0ull};
    return;
  }
  s.b = n;
  if (!ptr) {
    s.a = sc::kNull;
    return;
  }
  MemoryView& v = c.view();
  if (v.holds(ptr, n)) {
    s.a = v.offset_of(ptr);
    return;
  }
  s.a = v.reserve(n);
  if (p.dir != sc::Dir::out) std::memcpy(v.at(s.a), ptr, n);
  if (p.dir != sc::Dir::in) back.at[back.n++] = {ptr, s.a, n};
}

// A service table travels as its id; the extension cannot hand the host's tables back.
void* services_arg(Callee& c, sc::Slot& s, void*& hold) {
  hold = c.service_table(s.a);
  return &hold;
}
void null_slot(Callee&, const sc::Fn&, std::uint32_t, void* const*, sc::Slot& s, CopyBacks&) { s.a = sc::kNull; }

// [callbacks] A callback travels as its callback table's id; the extension gets that table's
// one stub (a callback table's only member sits at offset 0), which crosses like a service.
void* callback_arg(Callee& c, sc::Slot& s, void*& hold) {
  hold = nullptr;
  if (s.a != sc::kNull)
    if (const void* table = c.service_table(s.a)) std::memcpy(&hold, table, sizeof hold);
  return &hold;
}

// [handlers] A handler struct: the host's copy in the frame, made the extension's in place.
void* handlers_arg(Callee& c, sc::Slot& s, void*& hold) {
  hold = s.a == sc::kNull ? nullptr : c.fill_handlers(s.b, static_cast<unsigned char*>(c.view().at(s.a)));
  return &hold;
}

// String arrays from the host: b + 1 offsets (the last kNull), made pointers in place.
void* strings_arg(Callee& c, sc::Slot& s, void*& hold) {
  hold = nullptr;
  if (s.a == sc::kNull) return &hold;
  auto* e = static_cast<unsigned char*>(c.view().at(s.a));
  for (std::uint64_t k = 0; k <= s.b; ++k) {
    std::uint64_t off = 0;
    std::memcpy(&off, e + k * sizeof off, sizeof off);
    void* p = c.view().at(off);
    std::memcpy(e + k * sizeof p, &p, sizeof p);
  }
  hold = e;
  return &hold;
}

// A count the extension passed: a negative one counts nothing here, and the host, which reads
// the count itself, refuses it.
std::uint64_t count_arg_value(const sc::Fn& d, std::uint32_t i, void* const* args) {
  const sc::Param& p = d.params[i];
  const std::uint64_t v = scalar_bits(args[i], p.size);
  const bool is_signed = p.kind == sc::Kind::i8 || p.kind == sc::Kind::i16 || p.kind == sc::Kind::i32 || p.kind == sc::Kind::i64;
  return is_signed && p.size && (v >> (8 * p.size - 1)) & 1 ? 0 : v;
}

// String arrays to the host: every string copied into the frame (or used in place), then an
// array of their offsets; `b` is the element count. A NULL-terminated array is walked to its
// NULL: one without it runs off its end, and the extension crashes on its own memory.
void strings_slot(Callee& c, const sc::Fn& d, std::uint32_t i, void* const* args, sc::Slot& s, CopyBacks&) {
  const sc::Param& p = d.params[i];
  const char* const* v = *static_cast<const char* const* const*>(args[i]);
  if (!v) {
    s = {sc::kNull, 0};
    return;
  }
  std::uint64_t n = 0;
  if (p.count_arg != 0xff) n = count_arg_value(d, p.count_arg, args);
  else
    while (v[n]) ++n;
  MemoryView& m = c.view();
  s.a = m.reserve(n > m.size / sizeof(std::uint64_t) ? ~0ull : n * sizeof(std::uint64_t), alignof(std::uint64_t));
  s.b = n;
  for (std::uint64_t k = 0; k < n; ++k) {
    sc::Slot e{sc::kNull, 0};
    string_slot(c, v[k], e);
    std::memcpy(static_cast<unsigned char*>(m.at(s.a)) + k * sizeof e.a, &e.a, sizeof e.a);
  }
}

// [deep] A described struct: the result (a pointer the extension returned) or an out parameter
// (the frame's copy, which the extension filled with pointers of its own) is followed after the
// call and serialized into the frame; the slot then says where (deep_walk.h).
sc::Slot deep_result_slot(Callee& c, const sc::Param& p, void* rv) {
  const void* ptr = nullptr;
  std::memcpy(&ptr, rv, sizeof ptr);
  return serialize_deep(c.view(), c.structs(), c.deep_max_bytes(), p.table, ptr);
}
void deep_after_call(Callee& c, const sc::Param& p, sc::Slot& s, void*) {
  s = serialize_deep(c.view(), c.structs(), c.deep_max_bytes(), p.table, c.view().at(s.a));
}
// [sqlite] A string the library allocated and stored through an out_text parameter (a char **,
// like sqlite3_exec's errmsg): once the call has returned, copied into the frame (or used in
// place) and described in the cell for the host (schema::TextCell). The pointer the child passed
// is used, not the slot, which the extension can rewrite. A wild or unterminated string crashes
// the extension on its own memory.
void copy_out_text(Callee& c, const sc::Param&, sc::Slot&, void* passed) {
  void* at = passed;
  if (!at) return;
  sc::TextCell cell;
  std::memcpy(&cell, at, sizeof cell);
  sc::Slot s{sc::kNull, 0};
  if (cell.ptr) string_slot(c, reinterpret_cast<const char*>(static_cast<std::uintptr_t>(cell.ptr)), s);
  cell.off = s.a;
  cell.len = s.b;
  std::memcpy(at, &cell, sizeof cell);
}

// ---- the table ---------------------------------------------------------------------------------
// One row per kind; no default, so a kind without a row does not compile. Buffers, service
// tables, callbacks and string arrays are never results (interface.h returns pointers as strings): their result columns pass
// the bits unchanged. Nothing is ever a void parameter: that row's argument columns are a
// scalar's. Empty for a value outside the enumeration (a corrupt schema).
std::optional<Row> row_of(sc::Kind k) {
  using K = sc::Kind;
  switch (k) {
    //                           libffi type        slot->arg     arg->slot     frame? result->slot         slot->result                after call
    case K::void_:    return Row{&ffi_type_void,    bits_arg,     bits_slot,    false, no_result_slot,      no_result, nullptr};
    case K::i8:       return Row{&ffi_type_sint8,   bits_arg,     bits_slot,    false, bits_result_slot,    bits_result<std::int8_t>, nullptr};
    case K::u8:       return Row{&ffi_type_uint8,   bits_arg,     bits_slot,    false, bits_result_slot,    bits_result<std::uint8_t>, nullptr};
    case K::i16:      return Row{&ffi_type_sint16,  bits_arg,     bits_slot,    false, bits_result_slot,    bits_result<std::int16_t>, nullptr};
    case K::u16:      return Row{&ffi_type_uint16,  bits_arg,     bits_slot,    false, bits_result_slot,    bits_result<std::uint16_t>, nullptr};
    case K::i32:      return Row{&ffi_type_sint32,  bits_arg,     bits_slot,    false, bits_result_slot,    bits_result<std::int32_t>, nullptr};
    case K::u32:      return Row{&ffi_type_uint32,  bits_arg,     bits_slot,    false, bits_result_slot,    bits_result<std::uint32_t>, nullptr};
    case K::i64:      return Row{&ffi_type_sint64,  bits_arg,     bits_slot,    false, bits_result_slot,    bits_result<std::int64_t>, nullptr};
    case K::u64:      return Row{&ffi_type_uint64,  bits_arg,     bits_slot,    false, bits_result_slot,    bits_result<std::uint64_t>, nullptr};
    case K::f32:      return Row{&ffi_type_float,   bits_arg,     bits_slot,    false, bits_result_slot,    bits_result<float>, nullptr};
    case K::f64:      return Row{&ffi_type_double,  bits_arg,     bits_slot,    false, bits_result_slot,    bits_result<double>, nullptr};
    case K::record:   return Row{nullptr,           record_arg,   record_slot,  true,  record_result_slot,  record_result, nullptr};
    case K::cstring:  return Row{&ffi_type_pointer, pointer_arg,  cstring_slot, false, cstring_result_slot, cstring_result, nullptr};
    case K::buffer:   return Row{&ffi_type_pointer, pointer_arg,  buffer_slot,  false, bits_result_slot,    bits_result<std::uint64_t>, nullptr};
    case K::services: return Row{&ffi_type_pointer, services_arg, null_slot,    false, bits_result_slot,    bits_result<std::uint64_t>, nullptr};
    case K::callback: return Row{&ffi_type_pointer, callback_arg, null_slot,    false, bits_result_slot,    bits_result<std::uint64_t>, nullptr};
    case K::strings:  return Row{&ffi_type_pointer, strings_arg,  strings_slot, false, bits_result_slot,    bits_result<std::uint64_t>, nullptr};
    case K::deep:     return Row{&ffi_type_pointer, pointer_arg,  null_slot,    false, deep_result_slot,    bits_result<std::uint64_t>, deep_after_call};
    case K::out_text: return Row{&ffi_type_pointer, pointer_arg,  null_slot,    false, bits_result_slot,    bits_result<std::uint64_t>, copy_out_text};
    case K::handlers: return Row{&ffi_type_pointer, handlers_arg, null_slot,    false, bits_result_slot,    bits_result<std::uint64_t>, nullptr};
  }
  return std::nullopt;
}

// The scalar kind a layout token stands for; begin, close and end are structure, not members.
std::optional<sc::Kind> token_kind(sc::Tok t) {
  using T = sc::Tok;
  switch (t) {
    case T::i8: return sc::Kind::i8;
    case T::u8: return sc::Kind::u8;
    case T::i16: return sc::Kind::i16;
    case T::u16: return sc::Kind::u16;
    case T::i32: return sc::Kind::i32;
    case T::u32: return sc::Kind::u32;
    case T::i64: return sc::Kind::i64;
    case T::u64: return sc::Kind::u64;
    case T::f32: return sc::Kind::f32;
    case T::f64: return sc::Kind::f64;
    case T::end:
    case T::begin:
    case T::close: return std::nullopt;
  }
  return std::nullopt;
}

// ---- libffi descriptions -----------------------------------------------------------------------
using Built = std::expected<ffi_type*, BuildError>;

// A struct ffi_type from layout tokens starting after a `begin`; advances `i` past the matching
// `close`. The allocations live as long as the Callee.
Built record_type(const sc::Tok* toks, std::size_t& i) {
  ffi_type* elems[sc::kMaxLayout + 1];
  std::size_t n = 0;
  while (i < sc::kMaxLayout && toks[i] != sc::Tok::close && toks[i] != sc::Tok::end) {
    if (toks[i] == sc::Tok::begin) {
      ++i;
      const Built e = record_type(toks, i);
      if (!e) return e;
      elems[n++] = *e;
      continue;
    }
    const std::optional<sc::Kind> k = token_kind(toks[i++]);
    if (!k) return std::unexpected(BuildError{"schema", "bad struct layout"});
    elems[n++] = row_of(*k)->ffi;
  }
  if (i < sc::kMaxLayout && toks[i] == sc::Tok::close) ++i;
  auto* t = new ffi_type{};
  t->type = FFI_TYPE_STRUCT;
  t->elements = new ffi_type*[n + 1];
  std::copy(elems, elems + n, t->elements);
  t->elements[n] = nullptr;
  return t;
}

// The parameter's row and libffi type; `bad` names the error for a kind outside the enumeration.
std::expected<Row, BuildError> describe(const sc::Param& p, ffi_type*& type, const char* bad) {
  const std::optional<Row> row = row_of(p.kind);
  if (!row) return std::unexpected(BuildError{"schema", bad});
  type = row->ffi;
  if (p.kind == sc::Kind::record) {
    if (p.layout[0] != sc::Tok::begin) return std::unexpected(BuildError{"schema", "struct layout must start with begin"});
    std::size_t i = 1;
    const Built t = record_type(p.layout, i);
    if (!t) return std::unexpected(t.error());
    type = *t;
  }
  return *row;
}

// libffi (Debian 12's, at least) places closures, code and data together, in anonymous memory
// mapped writable and executable, and the extension receives pointers into it: left so, it could
// overwrite a stub with its own code and run it, past a filter's PROT_EXEC rule. Nothing writes a
// closure after it is prepared, so once all are built their pages become read+execute, before
// the extension is loaded (and before a sandbox, which would forbid the PROT_EXEC this needs).
// Closures whose code lies apart from their data (libffi's other modes) are never writable and
// executable at once and are left alone; the process backend's audit module refuses to load an
// extension while any mapping still is.
std::expected<void, BuildError> seal(void* const* closures, std::size_t n) {
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  for (std::size_t i = 0; i < n; ++i) {
    const auto start = reinterpret_cast<std::uintptr_t>(closures[i]) & ~(page - 1);
    const auto end = (reinterpret_cast<std::uintptr_t>(closures[i]) + sizeof(ffi_closure) + page - 1) & ~(page - 1);
    if (mprotect(reinterpret_cast<void*>(start), end - start, PROT_READ | PROT_EXEC) != 0)
      return std::unexpected(BuildError{"libffi", "cannot make the host-service stubs read-only"});
  }
  return {};
}

}  // namespace

struct Callee::FnRt {
  Callee* owner = nullptr;
  const sc::Fn* desc = nullptr;
  std::uint32_t table = 0;
  std::uint32_t index = 0;
  ffi_cif cif{};
  ffi_type* atypes[sc::kMaxParams]{};
  Row rows[sc::kMaxParams]{};
  Row ret{};
};

// The trampolines' handlers and the per-function build: the parts that reach into a Callee.
struct Codec {
  static std::expected<void, BuildError> build_fn(Callee::FnRt& f, Callee& owner, const sc::Fn* desc, std::uint32_t table,
                                                  std::uint32_t index) {
    f.owner = &owner;
    f.desc = desc;
    f.table = table;
    f.index = index;
    if (desc->nparams > sc::kMaxParams) return std::unexpected(BuildError{"schema", "too many parameters"});
    for (std::uint32_t i = 0; i < desc->nparams; ++i) {
      auto row = describe(desc->params[i], f.atypes[i], "bad parameter kind");
      if (!row) return std::unexpected(row.error());
      f.rows[i] = *row;
    }
    ffi_type* rtype = nullptr;
    auto ret = describe(desc->ret, rtype, "bad return kind");
    if (!ret) return std::unexpected(ret.error());
    f.ret = *ret;
    if (ffi_prep_cif(&f.cif, FFI_DEFAULT_ABI, desc->nparams, rtype, f.atypes) != FFI_OK)
      return std::unexpected(BuildError{"schema", "libffi rejected a signature"});
    return {};
  }

  // A granted service: encode the C arguments into a frame, cross to the host, copy out-buffers
  // back, decode the result.
  static void upcall(ffi_cif*, void* ret, void** args, void* user) {
    const auto& f = *static_cast<const Callee::FnRt*>(user);
    Callee& c = *f.owner;
    MemoryView& v = c.view_;
    const sc::Fn& d = *f.desc;
    const std::uint64_t saved_top = v.top;
    const std::uint64_t frame = v.reserve(sizeof(sc::Slot) * (d.nparams + 1));
    auto* slots = static_cast<sc::Slot*>(v.at(frame));
    std::memset(slots, 0, sizeof(sc::Slot) * (d.nparams + 1));
    CopyBacks back;
    for (std::uint32_t i = 0; i < d.nparams; ++i) f.rows[i].arg_to_slot(c, d, i, args, slots[1 + i], back);
    const sc::Slot r = c.host_.cross(c.host_.ctx, Upcall{f.table, f.index, frame, v.top - frame, v.top});
    for (std::size_t k = 0; k < back.n; ++k) std::memcpy(back.at[k].dst, v.at(back.at[k].off), back.at[k].n);
    f.ret.slot_to_result(c, d.ret, r, ret);
    v.top = saved_top;
  }

  // A service this domain was not granted: the call never reaches the host.
  static void refused(ffi_cif* cif, void* ret, void**, void* user) {
    const auto& f = *static_cast<const Callee::FnRt*>(user);
    f.owner->host_.refuse(f.owner->host_.ctx, f.table, f.index);
    std::memset(ret, 0, std::max<std::size_t>(cif->rtype->size, sizeof(ffi_arg)));
  }
};

std::expected<void, BuildError> Callee::build(std::span<const TableDesc> tables) {
  if (tables.empty() || tables.size() > sc::kMaxTables) return std::unexpected(BuildError{"schema", "bad table count"});
  ntables_ = static_cast<std::uint32_t>(tables.size());
  void* closures[sc::kMaxTables * sc::kMaxFns];
  std::size_t nclosures = 0;
  for (std::uint32_t t = 0; t < ntables_; ++t) {
    const TableDesc& td = tables[t];
    TableRt& rt = tables_[t];
    rt.nfns = static_cast<std::uint32_t>(td.fns.size());
    rt.fns = new FnRt[rt.nfns ? rt.nfns : 1];
    for (std::uint32_t i = 0; i < rt.nfns; ++i)
      if (auto r = Codec::build_fn(rt.fns[i], *this, &td.fns[i], t, i); !r) return r;
    if (t == 0) continue;
    // [deep] An object table has no trampolines: its functions are the extension's own.
    rt.object = rt.nfns != 0 && (td.fns[0].flags & sc::kFnObject) != 0;
    if (rt.object) continue;
    // A host service table: every declared entry becomes a libffi closure that crosses back into
    // the host. Undeclared entries stay null, as they would be in an unfilled C struct.
    auto* table = static_cast<unsigned char*>(std::calloc(1, td.struct_size ? td.struct_size : 1));
    for (std::uint32_t i = 0; i < rt.nfns; ++i) {
      void* code = nullptr;
      auto* cl = static_cast<ffi_closure*>(ffi_closure_alloc(sizeof(ffi_closure), &code));
      if (!cl) return std::unexpected(BuildError{"libffi", "cannot allocate a closure"});
      if (nclosures == sizeof closures / sizeof closures[0]) return std::unexpected(BuildError{"schema", "too many host services"});
      if (code == cl) closures[nclosures++] = cl;
      const bool granted = (td.fns[i].flags & sc::kFnGranted) != 0;
      if (ffi_prep_closure_loc(cl, &rt.fns[i].cif, granted ? Codec::upcall : Codec::refused, &rt.fns[i], code) != FFI_OK)
        return std::unexpected(BuildError{"libffi", "cannot prepare a closure"});
      if (td.fns[i].offset + sizeof(void*) > td.struct_size)
        return std::unexpected(BuildError{"schema", "function offset out of range"});
      std::memcpy(table + td.fns[i].offset, &code, sizeof code);
    }
    rt.c_table = table;
  }
  return seal(closures, nclosures);
}

void* Callee::fill_handlers(std::uint64_t id, unsigned char* copy) const {
  if (id == 0 || id >= ntables_ || !tables_[id].c_table) return nullptr;
  const TableRt& t = tables_[id];
  for (std::uint32_t i = 0; i < t.nfns; ++i) {
    const std::uint32_t off = t.fns[i].desc->offset;
    void* set = nullptr;
    std::memcpy(&set, copy + off, sizeof set);
    if (set) std::memcpy(copy + off, static_cast<const unsigned char*>(t.c_table) + off, sizeof set);
  }
  return copy;
}

sc::Slot Callee::serve(std::uint32_t table, std::uint32_t fn, std::uint64_t frame_off, std::uint64_t top,
                       std::uint64_t& top_at_return) {
  const std::uint64_t saved_top = view_.top;
  view_.top = top;
  FnRt& f = tables_[table].fns[fn];
  const sc::Fn& d = *f.desc;
  auto* params = static_cast<sc::Slot*>(view_.at(frame_off)) + 1;
  void* avalues[sc::kMaxParams];
  void* hold[sc::kMaxParams];
  for (std::uint32_t i = 0; i < d.nparams; ++i) avalues[i] = f.rows[i].slot_to_arg(*this, params[i], hold[i]);
  // The host sends only object addresses the extension returned; what the extension keeps there
  // now is its own business (a changed pointer crashes it, not the host).
  const void* object = table == 0 ? extension_ : reinterpret_cast<const void*>(params[-1].a);
  void* fnptr = nullptr;
  std::memcpy(&fnptr, static_cast<const unsigned char*>(object) + d.offset, sizeof fnptr);
  alignas(16) unsigned char local[16] = {};
  void* rv = f.ret.result_in_frame ? view_.at(view_.reserve(d.ret.size)) : local;
  ffi_call(&f.cif, FFI_FN(fnptr), rv, avalues);
  const sc::Slot r = f.ret.result_to_slot(*this, d.ret, rv);
  // After the call, what a kind must collect (strings the library allocated, descriptors): with
  // the pointer the child passed, not the slot, which the extension can rewrite meanwhile.
  for (std::uint32_t i = 0; i < d.nparams; ++i)
    if (f.rows[i].after_call) f.rows[i].after_call(*this, d.params[i], params[i], hold[i]);
  top_at_return = view_.top;
  view_.top = saved_top;
  return r;
}

}  // namespace ward::callee
