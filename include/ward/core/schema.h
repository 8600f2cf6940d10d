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
  // [deep] descriptors (iface/deep.h)
  deep,      // pointer to a described struct (Param::table: its Struct id): after the call the
             // child serializes what it points to into the frame (see "Descriptors" below)
  // [sqlite]
  out_text,  // char ** the library stores a string it allocated in: `a` is the offset of a
             // TextCell (kNull: a null char **); after the call the child copies the string into
             // the frame and fills in the cell (iface/opaque.h, "Texts")
  // [handlers]
  handlers,  // a struct of callbacks (iface/handlers.h): `a` is the offset of the host's copy in
             // the frame (kNull: a null pointer), `b` the id of its table; the child puts the stub
             // of each declared field the copy holds non-zero into that field, in place.
};

// What an out_text parameter points to in the frame. The extension's function stores its
// pointer in `ptr`; after the call the child sets `off`/`len` to a copy of the string in the
// frame (kNull/0 for a null pointer). All three are the extension's word: the host checks them.
struct TextCell {
  std::uint64_t ptr;
  std::uint64_t off;
  std::uint64_t len;
};
static_assert(sizeof(TextCell) == 24);

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
inline constexpr std::uint32_t kFnObject = 2;   // a descriptor's function: called through the object
                                                // whose address is in the frame's slot 0

struct Fn {
  std::uint32_t offset;    // byte offset of the function pointer inside its table struct
  std::uint32_t nparams;
  std::uint32_t flags;     // kFnGranted
  std::uint32_t symbol;    // a library's function: arena offset of its NUL-terminated symbol name
                           // (the child binds it with dlsym); 0 for a table's functions
  Param ret;
  Param params[kMaxParams];
};

// ---- Descriptors ([deep], iface/deep.h) -----------------------------------------------------------
// A described struct (WARD_STRUCT): which of its fields are pointers and what they point to. The
// child follows them after a call and writes a serialized copy into the frame; the host decodes
// it with every offset and size checked. Records are numbered by their index in the boot area's
// struct table.
inline constexpr std::size_t kMaxStructFields = 24;
inline constexpr std::uint32_t kMaxDeepDepth = 16;  // nested structs, cycles included

enum class FieldKind : std::uint8_t {
  text,      // const char *, NUL-terminated
  array,     // pointer to `count` elements; count is the integer field at count_offset
  one,       // pointer to one element
  function,  // function pointer: checked to point into code, never copied
  skip,      // a pointer the host does not follow (its copy holds null)
};
enum class ElemKind : std::uint8_t {
  bytes,   // elem_size plain bytes (scalars, pointer-free structs)
  text,    // a const char * (an array of strings)
  nested,  // a described struct: record `nested`
};

struct Field {
  std::uint32_t offset;        // of the pointer inside the struct
  FieldKind kind;
  ElemKind elem;               // array and one
  std::uint8_t count_width;    // array: bytes of the (unsigned) count field: 1, 2, 4 or 8
  std::uint8_t nested;         // ElemKind::nested: the element's Struct id
  std::uint32_t count_offset;  // array: of the count field inside the struct
  std::uint32_t elem_size;     // array and one
};

struct Struct {
  std::uint32_t size;  // sizeof the struct
  std::uint32_t nfields;
  Field fields[kMaxStructFields];
};

// What the child writes for one deep value (all records 8-byte aligned, little endian):
//   DeepHeader, then node(root), where node(struct S at p) is S's bytes (padded to 8), then per
//   declared field in order: text: u64 length (kNull: null) and the bytes with their NUL;
//   array: u64 count (kNull: null) and the elements (bytes: packed; text: a text record each;
//   nested: a node each); one: u64 1 (kNull: null) and the element likewise; function, skip:
//   nothing. A non-zero status means the child stopped there: the rest is absent.
enum class DeepStatus : std::uint32_t {
  ok = 0,
  unreadable,  // a pointer (or the root) points to memory the child cannot read
  not_code,    // a function pointer does not point into a loaded object's code
  too_big,     // more bytes than the limit (a huge count, an unterminated string)
  too_deep,    // nested deeper than kMaxDeepDepth
};
struct DeepHeader {
  DeepStatus status;
  std::uint32_t where_struct;  // the Struct id and field index the status is about
  std::uint32_t where_field;   // (~0u: the struct's own address)
  std::uint32_t pad;
  std::uint64_t bytes;         // the whole serialization, header included
  std::uint64_t address;       // where the root lies in the extension (objects: object.h)
};
static_assert(sizeof(DeepHeader) == 32);
// The most bytes one deep value may serialize into (the host's limit too).
inline constexpr std::uint32_t kDeepMaxBytes = 1u << 20;

inline constexpr std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) & ~(a - 1); }

}  // namespace ward::schema
