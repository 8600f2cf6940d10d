// The backend-neutral description of an interface: what kind each parameter and result is, how
// a by-value struct is laid out for the C ABI, and the slot a value crosses in. Every backend
// and both sides of a crossing read the same records; the host builds them at compile time from
// WARD_INTERFACE (iface/interface.h).
//
// Plain C++ with no ward dependencies: the child-side helper includes it too.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ward::schema {

inline constexpr std::uint64_t kNull = ~0ull;  // offset meaning "null pointer"
inline constexpr std::size_t kMaxParams = 12;
inline constexpr std::size_t kMaxTables = 16;
inline constexpr std::size_t kMaxFns = 64;
inline constexpr std::size_t kMaxLayout = 40;  // tokens describing one by-value struct

// A frame slot: a scalar's bytes live in `a` (little endian, zero-extended); a by-value struct
// or a pointer is an arena offset in `a` (kNull for null) with its byte count in `b`; a service
// table parameter is the table id in `a`.
struct Slot {
  std::uint64_t a;
  std::uint64_t b;
};
static_assert(sizeof(Slot) == 16);

enum class Kind : std::uint8_t {
  void_,
  i8, u8, i16, u16, i32, u32, i64, u64, f32, f64,
  record,    // trivially copyable struct by value; layout tokens describe it for the C ABI
  cstring,   // const char *, NUL-terminated, copied in
  buffer,    // pointer to `count` elements of `size` bytes, direction in `dir`
  services,  // pointer to a host service table (id in the slot)
  // [callbacks]
  callback,  // a C function pointer: the extension gets the stub of callback table `table` (the
             // table id in the slot's `a`; kNull: a null pointer)
  strings,   // char **: `a` is the offset of an array of string offsets (kNull elements are NULL
             // pointers), `b` its element count; count_arg names the count parameter, 0xff: the
             // array ends at its first NULL. Host -> extension: the array holds b + 1 entries, the
             // last kNull, and the child turns them into pointers in place.
  // [handlers]
  handlers,  // a struct of callbacks (iface/handlers.h): `a` is the offset of the host's copy in
             // the frame (kNull: a null pointer), `b` the id of its table; the child puts the stub
             // of each declared field the copy holds non-zero into that field, in place.
};

enum class Dir : std::uint8_t { none = 0, in = 1, out = 2, inout = 3 };

// Layout tokens for a by-value struct, so the child can tell libffi how the C ABI passes it.
enum class Tok : std::uint8_t { end = 0, begin, close, i8, u8, i16, u16, i32, u32, i64, u64, f32, f64 };

struct Param {
  Kind kind;
  Dir dir;
  std::uint8_t nullable;
  std::uint8_t count_arg;  // buffers: the parameter the element count is read from; 0xff: none
  std::uint32_t size;      // scalar size, element size, or struct size
  std::uint32_t table;     // services, callback: table id
  std::uint32_t count_const;  // buffers: the count's constant factor (count_arg's value times
                              // this); 0 for sizes only the host computes (iface/size.h)
  Tok layout[kMaxLayout];  // records only
};

inline constexpr std::uint32_t kFnGranted = 1;  // host services: this domain may call it

struct Fn {
  std::uint32_t offset;    // byte offset of the function pointer inside its table struct
  std::uint32_t nparams;
  std::uint32_t flags;     // kFnGranted
  std::uint32_t symbol;    // a library's function: arena offset of its NUL-terminated symbol name
                           // (the child binds it with dlsym); 0 for a table's functions
  Param ret;
  Param params[kMaxParams];
};

inline constexpr std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) & ~(a - 1); }

}  // namespace ward::schema
