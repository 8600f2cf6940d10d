// What `ward gen` infers from a C declaration: one table of rules (infer.cc, kRules), each a
// pattern over a pointer (what it points to, const or not, the parameter after it, where it
// appears) and the annotation it writes. The first row that matches decides; a pointer no row
// decides gets an undecided marker (include/ward/gen/undecided.h) carrying the question to
// answer by hand. Pure: no libclang, no I/O, so tests feed it hand-built model values.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "gen/model.h"

namespace ward::gen {

// One annotation ward gen writes, or one marker it leaves.
struct Annotation {
  std::string text;          // "ward::in(2, 3)"; for a marker, the question (without the marker syntax)
  int param = -1;            // the parameter it decides; -1: the result
  std::vector<int> covers;   // further parameters it decides (a length pointer, a user-data void *)
  bool undecided = false;
  std::string rule;          // the row of the table that wrote it
};

// A WARD_CALLBACK ward gen writes for a function-pointer parameter.
struct CallbackDecl {
  std::string alias;      // the name WARD_CALLBACK takes (a typedef of the header's, or a new alias)
  std::string type;       // the function-pointer type, spelled for `using alias = type;` ("" if alias is the header's)
  std::string canonical;  // one WARD_CALLBACK per C++ type
  std::vector<Annotation> anns;
};

// One entry of the WARD_LIBRARY, or why a function cannot be one.
struct Decl {
  std::string name;
  std::vector<Annotation> anns;
  std::vector<CallbackDecl> callbacks;  // the callback types its parameters take
  std::vector<EnumInfo> enums;          // C enums it passes or returns (need ward::enum_range)
  std::string skipped;                  // non-empty: not declarable, and why
};

// What the rules may know beyond one signature.
struct Context {
  // Typedefs of void * that one of the chosen functions returns (f0r_instance_t): a parameter of
  // such a type is the handle the library gave out.
  std::set<std::string> handle_typedefs;
};

// The handle typedefs of a set of functions (see Context).
Context context_for(const std::vector<Function>& fns);

// Infers the annotations of a library function.
Decl infer(const Function& fn, const Context& ctx);

// The rule names, in table order (for docs and tests).
std::vector<std::string> rule_names();

}  // namespace ward::gen
