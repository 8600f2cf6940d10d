// The callee half of a crossing, as a library: given a frame of schema::Slot in some memory,
// call a C function of the extension with libffi; given a C call the extension makes through a
// host-service trampoline, build a frame and hand it to the host. It knows the schema
// (core/schema.h) and a memory view, and nothing of processes, channels or policies: the
// process backend (main.cc) supplies those through MemoryView and Host.
//
// Contract:
// - Memory: the view's bytes belong to whoever mapped them (the backend); the Callee only reads
//   and writes frames in it. Frames live on a stack that grows upwards from `top`; serve() and
//   each upcall restore `top` before returning, so what they reserved is free again.
// - Trust: the callee trusts the host. It follows the offsets, sizes and table ids the host puts
//   in slots and schemas without bounds checks; checking the extension's side is the host's job.
//   Build-time checks (layouts, counts) exist only to fail loudly on a corrupt schema.
// - Out of space: when a reservation does not fit, MemoryView::out_of_space(n) is called and
//   must not return (the process backend records the failure and exits). There is no way to fail
//   a C call made through a trampoline, so there is no error path back into the codec.
// - Lifetime: a built Callee lives as long as the extension's code may run: its trampolines are
//   sealed read+execute (see build) and are never freed.
// - Threads: one at a time. Nested crossings (the host calls back while an upcall waits) are
//   fine: they reenter serve() on the same thread.
#pragma once

#include <cstdint>
#include <expected>
#include <span>

#include "ward/core/schema.h"

namespace ward::callee {

// The memory frames live in: `size` bytes at `base`, a frame stack whose first free byte is `top`.
struct MemoryView {
  unsigned char* base = nullptr;
  std::uint64_t size = 0;
  std::uint64_t top = 0;
  void (*out_of_space)(std::uint64_t needed) = nullptr;  // must not return (see above)

  void* at(std::uint64_t off) const { return off == schema::kNull ? nullptr : base + off; }
  // True when the n bytes at p lie inside the view (a pointer the other side can read as is).
  bool holds(const void* p, std::uint64_t n) const;
  std::uint64_t offset_of(const void* p) const { return static_cast<std::uint64_t>(static_cast<const unsigned char*>(p) - base); }
  // n bytes on the frame stack, aligned; calls out_of_space when they do not fit.
  std::uint64_t reserve(std::uint64_t n, std::uint64_t align = 16);
};

// What an upcall hands to the host: which service, its frame, and the top of the frame stack
// above everything the callee still needs.
struct Upcall {
  std::uint32_t table;
  std::uint32_t fn;
  std::uint64_t frame_off;  // frame = [unused slot][param slots][payload]
  std::uint64_t frame_len;
  std::uint64_t top;
};

// How the callee reaches the host. `cross` delivers an upcall and returns the host's result slot
// (it may serve nested calls meanwhile). `refuse` runs instead of crossing when the extension
// calls a service this domain was not granted: what that means is the backend's policy (the
// process backend ends the process by SIGSYS); if it returns, the extension sees a zero result.
struct Host {
  void* ctx = nullptr;
  schema::Slot (*cross)(void* ctx, const Upcall& call) = nullptr;
  void (*refuse)(void* ctx, std::uint32_t table, std::uint32_t fn) = nullptr;
};

// One table of the interface: 0 is the extension's own, the others host services.
// [deep] An object table (its functions flagged schema::kFnObject) describes a struct the
// extension returned (a descriptor): no trampolines; its functions are called through the object
// whose address the host puts in the frame's slot 0.
struct TableDesc {
  std::span<const schema::Fn> fns;
  std::uint32_t struct_size = 0;  // sizeof the C table struct (host services)
};

// Why a schema could not be built, in two parts ("schema", "bad struct layout"); static strings.
struct BuildError {
  const char* what;
  const char* detail;
};

class Callee {
 public:
  Callee(MemoryView view, Host host) : view_(view), host_(host) {}
  Callee(const Callee&) = delete;
  Callee& operator=(const Callee&) = delete;

  // Builds the libffi call descriptions of every function and, for each host-service table, the
  // C struct of trampolines the extension receives; then seals the trampolines. Call once,
  // before any extension code runs (sealing needs mprotect(PROT_EXEC), which a sandbox forbids).
  [[nodiscard]] std::expected<void, BuildError> build(std::span<const TableDesc> tables);
  // The extension's own table (what its entry returned): serve() calls through it.
  void bind(const void* extension_table) { extension_ = extension_table; }
  // [deep] The described structs deep values follow, and the most bytes one may serialize into.
  void describe_structs(std::span<const schema::Struct> structs, std::uint64_t max_bytes) {
    structs_ = structs;
    deep_max_bytes_ = max_bytes;
  }
  [[nodiscard]] std::span<const schema::Struct> structs() const { return structs_; }
  [[nodiscard]] std::uint64_t deep_max_bytes() const { return deep_max_bytes_; }
  // Whether `table` is an object table ([deep]): calls name an object instead of table 0.
  [[nodiscard]] bool object_table(std::uint32_t table) const { return table != 0 && table < ntables_ && tables_[table].object; }

  [[nodiscard]] std::uint32_t nfns(std::uint32_t table) const { return table < ntables_ ? tables_[table].nfns : 0; }
  // The C struct of trampolines for host-service table `id`, or null (no such table, or table 0).
  [[nodiscard]] void* service_table(std::uint64_t id) const;
  // Makes `copy`, a handler struct the host sent for table `id` (iface/handlers.h), the
  // extension's: each declared field the host set non-zero receives that field's stub. Null for
  // an unknown table (the host sent nothing the extension may call).
  [[nodiscard]] void* fill_handlers(std::uint64_t id, unsigned char* copy) const;
  MemoryView& view() { return view_; }

  // Calls function `fn` (< nfns(table)) of the extension with the arguments in the frame at
  // `frame_off`, allocating above `top`; the view's top is restored afterwards. Table 0 is the
  // extension's own; an object table's function is read from the object at slot 0's address. Returns the
  // result slot (in registers: it is on the crossing's critical path) and sets `top_at_return`
  // to the frame stack's top when the call returned (the host allocates above it until it has
  // read the result).
  schema::Slot serve(std::uint32_t table, std::uint32_t fn, std::uint64_t frame_off, std::uint64_t top, std::uint64_t& top_at_return);

 private:
  struct FnRt;          // one function's libffi description and kind rows (callee.cc)
  friend struct Codec;  // builds FnRt; the trampolines' handlers (callee.cc)

  struct TableRt {
    FnRt* fns = nullptr;
    std::uint32_t nfns = 0;
    void* c_table = nullptr;  // host services: the C struct of trampolines
    bool object = false;      // [deep] an object table
  };
  MemoryView view_;
  Host host_;
  TableRt tables_[schema::kMaxTables];
  std::uint32_t ntables_ = 0;
  const void* extension_ = nullptr;
  std::span<const schema::Struct> structs_;
  std::uint64_t deep_max_bytes_ = 0;
};

}  // namespace ward::callee
