// The layout both sides of a process domain agree on: the shared arena's control block, the
// messages that cross the channel, the call frames and the interface schema.
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

namespace ward::wire {

static_assert(std::endian::native == std::endian::little, "ward's wire format assumes little endian");

inline constexpr std::uint64_t kMagic = 0x31414e4552414457ull;  // "WDARENA1"
inline constexpr std::uint32_t kVersion = 5;  // bump on any layout change
inline constexpr std::uint64_t kNull = ~0ull;  // offset meaning "null pointer"
inline constexpr std::uint64_t kNoLimit = ~0ull;  // an rlimit meaning "unlimited"
inline constexpr std::size_t kCacheLine = 64;
inline constexpr std::size_t kMaxParams = 12;
inline constexpr std::size_t kMaxTables = 16;
inline constexpr std::size_t kMaxFns = 64;
inline constexpr std::size_t kMaxLayout = 40;  // tokens describing one by-value struct
inline constexpr std::size_t kControlSize = 4096;
inline constexpr int kArenaFd = 3;                   // where the helper finds the arena
inline constexpr int kHelperExitBadSetup = 120;      // helper could not set itself up
// (121 once meant "violation"; a violation now always ends the child by SIGSYS, which the
// extension cannot fake with an exit code.)
inline constexpr int kHelperExitProtocol = 122;      // the host sent something impossible
inline constexpr int kHelperExitArena = 123;         // the plugin passed more than the arena holds

// A frame slot: a scalar's bytes live in `a` (little endian, zero-extended); a by-value struct
// or a pointer is an arena offset in `a` (kNull for null) with its byte count in `b`; a service
// table parameter is the table id in `a`.
struct Slot {
  std::uint64_t a;
  std::uint64_t b;
};
static_assert(sizeof(Slot) == 16);

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
  std::uint64_t entry_off;                // NUL-terminated symbol
  // RLIMIT_FSIZE, always applied (unlike the limits above, 0 is a real limit: no file may grow;
  // kNoLimit leaves it unlimited). After the fields the audit module reads at fixed offsets, in
  // the padding before `to_child`, so neither they nor the doorbells move.
  std::uint64_t rlimit_fsize;
  Doorbell to_child;  // host -> child messages
  Doorbell to_host;   // child -> host messages
  Fault fault;
};
static_assert(sizeof(Control) <= kControlSize);
static_assert(offsetof(Control, to_child) % kCacheLine == 0);

// ---- interface schema -------------------------------------------------------------------------
enum class Kind : std::uint8_t {
  void_,
  i8, u8, i16, u16, i32, u32, i64, u64, f32, f64,
  record,    // trivially copyable struct by value; layout tokens describe it for the C ABI
  cstring,   // const char *, NUL-terminated, copied in
  buffer,    // pointer to `count` elements of `size` bytes, direction in `dir`
  services,  // pointer to a host service table (id in the slot)
};

enum class Dir : std::uint8_t { none = 0, in = 1, out = 2, inout = 3 };

// Layout tokens for a by-value struct, so the child can tell libffi how the C ABI passes it.
enum class Tok : std::uint8_t { end = 0, begin, close, i8, u8, i16, u16, i32, u32, i64, u64, f32, f64 };

struct Param {
  Kind kind;
  Dir dir;
  std::uint8_t nullable;
  std::uint8_t count_arg;  // index of the parameter holding the element count; 0xff: one element
  std::uint32_t size;      // scalar size, element size, or struct size
  std::uint32_t table;     // services: table id
  std::uint32_t pad;
  Tok layout[kMaxLayout];  // records only
};

inline constexpr std::uint32_t kFnGranted = 1;  // host services: this domain may call it

struct Fn {
  std::uint32_t offset;    // byte offset of the function pointer inside its table struct
  std::uint32_t nparams;
  std::uint32_t flags;     // kFnGranted
  std::uint32_t pad;
  Param ret;
  Param params[kMaxParams];
};

struct Table {
  std::uint32_t struct_size;  // sizeof the C table struct
  std::uint32_t nfns;
  std::uint64_t fns_off;      // arena offset of `nfns` Fn records
};

// Table 0 is the plugin's own; the others are host service tables, in id order.
struct Schema {
  std::uint32_t ntables;
  std::uint32_t pad;
  Table tables[kMaxTables];
};

inline constexpr std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) & ~(a - 1); }

}  // namespace ward::wire
