// ward gen's view of a C declaration: what the inference table (infer.h) looks at. Filled from a
// header by the libclang reader (parse.h) or by hand in tests; plain values, no libclang types.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ward::gen {

// What a type is, as far as ward's annotations care (canonical: through every typedef).
enum class Shape : unsigned char { void_, integer, floating, enum_, record, pointer, function, other };

// A C enum: ward needs its valid range (ward::enum_range), taken from its smallest and largest
// enumerators.
struct EnumInfo {
  std::string name;  // as C++ names it: "ZSTD_cParameter", "enum color"
  std::string min, max;
};

// A struct a declaration uses through a pointer or by value.
struct RecordInfo {
  std::string name;
  int function_fields = 0;  // function pointers: mostly these, a struct of callbacks (a SAX handler)
  int pointer_fields = 0;   // data pointers: a WARD_STRUCT would be needed to copy it
  bool is_handlers() const { return function_fields > pointer_fields; }
};

struct Signature;

// One level of what a pointer points to.
struct Level {
  Shape shape = Shape::other;
  bool is_const = false;
  bool is_char = false;      // char or signed char: text
  bool is_uchar = false;     // unsigned char (xmlChar, Bytef): text or bytes
  bool incomplete = false;   // a struct the header never defines (sqlite3, ZSTD_CCtx)
  bool is_unsigned = false;  // integers
};

struct CType {
  std::string spelling;      // as the header writes it: "const ZSTD_inBuffer *", "sqlite3 **"
  std::string canonical;     // through every typedef: two spellings of one C++ type compare equal
  std::string typedef_name;  // the outermost typedef it is written through: "size_t", "f0r_instance_t"
  Shape shape = Shape::other;
  bool is_unsigned = false;              // integers
  std::vector<Level> levels;             // pointers: [0] what it points to, [1] what that points to
  std::shared_ptr<Signature> fn;         // function pointers: the signature
  std::optional<EnumInfo> enum_info;     // enums by value
  std::optional<RecordInfo> record;      // structs, by value or as levels[0]
  bool is_pointer() const { return shape == Shape::pointer; }
  bool is_fn_pointer() const { return is_pointer() && !levels.empty() && levels[0].shape == Shape::function; }
};

struct Param {
  std::string name;  // may be empty: C lets a prototype omit it
  CType type;
};

struct Signature {
  CType result;
  std::vector<Param> params;
  bool variadic = false;
};

struct Function {
  std::string name;
  Signature sig;
  bool exported = true;  // false: static or inline in the header (no symbol to bind)
};

}  // namespace ward::gen
