// The layout both sides of a process domain agree on: the shared arena's control block, the
// messages that cross the channel, the call frames and where the boot area puts the interface
// schema (core/schema.h describes the schema itself).
//
// Trust: the host writes the boot area and trusts nothing the child writes afterwards. Every
// value the host reads back from the arena is read once into host memory and validated there
// (offsets in bounds, sizes without overflow, strings terminated); the child is free to scribble
// over all of it and only hurts itself. The child trusts the host.
//
// This header is plain C++ with no ward dependencies so the helper executable can use it.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "ward/core/schema.h"

namespace ward::wire {

using schema::Slot;
using schema::align_up;
using schema::kNull;
using schema::kMaxTables;

static_assert(std::endian::native == std::endian::little, "ward's wire format assumes little endian");

inline constexpr std::uint64_t kMagic = 0x31414e4552414457ull;  // "WDARENA1"
inline constexpr std::uint32_t kVersion = 9;  // bump on any layout change
inline constexpr std::uint64_t kNoLimit = ~0ull;  // an rlimit meaning "unlimited"
inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::size_t kControlSize = 4096;
inline constexpr int kArenaFd = 3;                   // where the helper finds the arena
inline constexpr int kHelperExitBadSetup = 120;      // helper could not set itself up
// (121 once meant "violation"; a violation now always ends the child by SIGSYS, which the
// extension cannot fake with an exit code.)
inline constexpr int kHelperExitProtocol = 122;      // the host sent something impossible
inline constexpr int kHelperExitArena = 123;         // the plugin passed more than the arena holds

enum class MsgKind : std::uint16_t {
  none = 0,
  ready,       // child -> host: plugin loaded, entry resolved
  load_error,  // child -> host: text in Fault::text
  call,        // host -> child: call a plugin function
  ret,         // child -> host: that call returned (result in `ret`)
  upcall,      // child -> host: the plugin called a host service
  upret,       // host -> child: the host service returned (result in `ret`)
  ping,        // host -> child: heartbeat while idle
  pong,        // child -> host: heartbeat answer
  checkpoint,    // host -> child: copy your writable data into the checkpoint area
  checkpointed,  // child -> host: done (ret: 0, or why not; checkpoint_area.h)
  restore,       // host -> child: the area holds a checkpoint; copy it back over your data
  restored,      // child -> host: done (ret as for checkpointed)
};

// A message: which function, where its frame lies, the first free byte of the arena stack
// above everything the sender still needs (the receiver allocates above it), and the result.
struct Msg {
  MsgKind kind;
  std::uint16_t table;      // 0: the plugin's table; >0: a host service table
  std::uint32_t fn;         // index of the function in the table's schema
  std::uint64_t frame_off;  // frame = [unused slot][param slots][payload]
  std::uint64_t frame_len;
  std::uint64_t top;
  Slot ret;
};
static_assert(sizeof(Msg) == 48);

// One direction of the channel, one cache line: the message travels in the same line as the
// sequence word that announces it, so a crossing moves as few lines between CPUs as possible.
// The sender writes `msg`, bumps `seq` and wakes the futex only when the receiver announced it
// is (about to be) asleep; the spin phase stays free of system calls.
struct alignas(kCacheLine) Doorbell {
  std::atomic<std::uint32_t> seq;
  std::atomic<std::uint32_t> sleeping;
  std::atomic<std::int32_t> cpu;  // where this doorbell's receiver last waited (spin heuristics)
  std::uint32_t pad;
  Msg msg;
};
static_assert(sizeof(Doorbell) == kCacheLine);

// Why the child stopped, as far as the child could tell before it died. Untrusted: it only
// qualifies what the host observed itself (which system call or service, when the child died by
// SIGSYS; how large an allocation failed, when it died of a signal), never replaces it.
inline constexpr std::uint32_t kViolationSyscall = 1;   // seccomp trapped `syscall_nr`
inline constexpr std::uint32_t kViolationUngranted = 2; // called service `ungranted_fn` of `ungranted_table`

struct Fault {
  std::atomic<std::uint32_t> violation;     // kViolation*
  std::int32_t syscall_nr;
  std::uint32_t ungranted_table;
  std::uint32_t ungranted_fn;
  std::atomic<std::uint64_t> alloc_failed;  // size of the first allocation that failed, or 0
  char text[512];                           // load errors (dlopen, dlsym), NUL-terminated
};

struct Control {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t pad0;
  std::uint64_t arena_size;
  std::uint64_t data_off;   // first byte of the frame stack
  // Limits the child applies to itself before loading the plugin (0: leave as inherited).
  std::uint64_t rlimit_as;
  std::uint64_t rlimit_cpu;
  std::uint64_t rlimit_nofile;
  std::uint64_t spin_ns;    // how long a waiting side spins before it sleeps on the futex
  // Boot: written by the host before `boot_ready` is set; read once by the child.
  std::atomic<std::uint32_t> boot_ready;  // futex word
  std::uint32_t filter_len;               // sock_filter entries
  std::uint64_t filter_off;               // from the start of the arena
  std::uint64_t schema_off;
  std::uint64_t plugin_off;               // NUL-terminated absolute path
  std::uint64_t entry_off;                // NUL-terminated symbol; empty: a library whose table 0
                                          // the child binds by symbol (schema::Fn::symbol)
  // RLIMIT_FSIZE, always applied (unlike the limits above, 0 is a real limit: no file may grow;
  // kNoLimit leaves it unlimited). After the fields the audit module reads at fixed offsets, in
  // the padding before `to_child`, so neither they nor the doorbells move.
  std::uint64_t rlimit_fsize;
  // Sandbox memory (backend/sandbox_heap.h): [heap_off, arena_size) of the arena; the frame
  // stack ends at heap_off (== arena_size when there is none). Also in the padding.
  std::uint64_t heap_off;
  // Where the child must map the arena (MAP_FIXED_NOREPLACE), or 0 for anywhere. A restart under
  // a Supervisor asks for the failed child's address, so the pointers into sandbox memory that
  // the extension stored stay valid.
  std::uint64_t arena_at;
  Doorbell to_child;  // host -> child messages
  Doorbell to_host;   // child -> host messages
  Fault fault;
  // Child -> host, before `ready`: where the child mapped the arena. Untrusted, and read once:
  // the host only adds offsets to it to tell the host the addresses the extension itself will
  // use (Sandboxed::in_extension), and asks a restarted child for the same address. A lie
  // misleads the extension about its own memory, or makes its own restart fail to load.
  std::uint64_t mapped_at;
  // The checkpoint area (checkpoint_area.h): [ckpt_off, ckpt_off + ckpt_size) of the arena, or
  // ckpt_size 0 when the extension is not checkpointable. Written by the host before boot.
  std::uint64_t ckpt_off;
  std::uint64_t ckpt_size;
};
static_assert(offsetof(Control, arena_at) + sizeof(std::uint64_t) <= offsetof(Control, to_child),
              "the sandbox fields live in the padding before the doorbells");
static_assert(sizeof(Control) <= kControlSize);
static_assert(offsetof(Control, to_child) % kCacheLine == 0);


// The interface schema as the boot area holds it: table 0 is the plugin's own; the others are
// host service tables, in id order.
struct Table {
  std::uint32_t struct_size;  // sizeof the C table struct
  std::uint32_t nfns;
  std::uint64_t fns_off;      // arena offset of `nfns` schema::Fn records
};

struct Schema {
  std::uint32_t ntables;
  std::uint32_t pad;
  Table tables[kMaxTables];
  // [deep] described structs (schema::Struct records) and the most bytes one deep value may
  // serialize into.
  std::uint64_t structs_off;
  std::uint32_t nstructs;
  std::uint32_t deep_max_bytes;
};

}  // namespace ward::wire
