// `ward gen`: a ward declaration from a C library's own header. Reads the header with libclang
// (parse.cc), infers each chosen function's annotations from the table in infer.h, and writes
// a compilable C++ declaration (emit.cc): enum ranges, WARD_CALLBACKs, one WARD_LIBRARY. Every
// pointer the table cannot decide becomes ward::undecided<"question"> (ward/gen/undecided.h),
// which fails the build with the question until a person answers it.
// Not thread-safe with itself (one libclang index per call); no global state.
#pragma once

#include <string>
#include <vector>

#include "gen/infer.h"
#include "gen/model.h"
#include "ward/core/error.h"

namespace ward::gen {

struct Options {
  std::string header;                   // the header file to read
  std::vector<std::string> functions;   // the functions to declare; empty: every function the header itself declares
  std::string name;                     // the WARD_LIBRARY's name; empty: from the header's file name
  std::string include;                  // how the output includes the header ("<zstd.h>"); empty: inferred
  std::vector<std::string> clang_args;  // -I, -D, ... for libclang
};

// Reads `header` and returns every function declared in it or in what it includes (`in_header`:
// those declared in the header file itself, in order). Errors: misuse for an unreadable header
// or one with compile errors (the first diagnostics, as clang words them).
struct Parsed {
  std::vector<Function> in_header;
  std::vector<Function> all;
};
Result<Parsed> parse_header(const std::string& header, const std::vector<std::string>& clang_args);

struct Generated {
  std::vector<Decl> decls;  // in the order written
  std::string text;         // the C++ declaration
  int undecided = 0;        // how many markers it holds
};

// The whole of `ward gen`. A function named in opts.functions that the header does not declare
// is misuse (named in the message).
Result<Generated> generate(const Options& opts);

// Writes the declaration for decls (emit.cc). `include` is the #include line's argument.
std::string emit(const std::vector<Decl>& decls, const std::string& name, const std::string& include,
                 const std::string& origin);

// A C++ identifier from a header's file name: "/usr/include/zstd.h" -> "zstd_lib".
std::string library_name_for(const std::string& header);

}  // namespace ward::gen
