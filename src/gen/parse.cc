// Reading a C header with libclang into gen/model.h values. Everything libclang hands out is
// released before returning (the translation unit, the index, every CXString).
#include <clang-c/Index.h>

#include <memory>
#include <string>
#include <vector>

#include "gen/gen.h"

namespace ward::gen {
namespace {

std::string take(CXString s) {
  const char* c = clang_getCString(s);
  std::string out = c ? c : "";
  clang_disposeString(s);
  return out;
}

bool is_char_kind(CXTypeKind k) { return k == CXType_Char_S || k == CXType_Char_U || k == CXType_SChar; }
bool is_unsigned_kind(CXTypeKind k) {
  return k == CXType_UChar || k == CXType_Char_U || k == CXType_UShort || k == CXType_UInt || k == CXType_ULong ||
         k == CXType_ULongLong || k == CXType_UInt128 || k == CXType_Bool;
}
bool is_integer_kind(CXTypeKind k) {
  return (k >= CXType_Bool && k <= CXType_Int128) && !(k == CXType_Float || k == CXType_Double || k == CXType_LongDouble);
}

Shape shape_of(CXType c) {
  switch (c.kind) {
    case CXType_Void: return Shape::void_;
    case CXType_Float: case CXType_Double: case CXType_LongDouble: case CXType_Float128: return Shape::floating;
    case CXType_Enum: return Shape::enum_;
    case CXType_Record: return Shape::record;
    case CXType_Pointer: return Shape::pointer;
    case CXType_FunctionProto: case CXType_FunctionNoProto: return Shape::function;
    default: return is_integer_kind(c.kind) ? Shape::integer : Shape::other;
  }
}

// The names C gives a function type's parameters where it is written (a typedef or a parameter
// declaring a function pointer): child ParmDecls of that cursor.
std::vector<std::string> parm_names(CXCursor c) {
  std::vector<std::string> names;
  clang_visitChildren(
      c,
      [](CXCursor child, CXCursor, CXClientData d) {
        if (clang_getCursorKind(child) == CXCursor_ParmDecl)
          static_cast<std::vector<std::string>*>(d)->push_back(take(clang_getCursorSpelling(child)));
        return CXChildVisit_Continue;
      },
      &names);
  return names;
}

std::string strip_type_name(std::string s) {
  for (std::string_view q : {"const ", "volatile "}) {
    for (std::size_t at; (at = s.find(q)) != std::string::npos;) s.erase(at, q.size());
  }
  return s;
}

RecordInfo record_info(CXType c, const std::string& spelled) {
  RecordInfo r{.name = strip_type_name(spelled)};
  clang_Type_visitFields(
      c,
      [](CXCursor field, CXClientData d) {
        auto* r = static_cast<RecordInfo*>(d);
        CXType t = clang_getCanonicalType(clang_getCursorType(field));
        if (t.kind == CXType_Pointer) {
          CXType p = clang_getCanonicalType(clang_getPointeeType(t));
          if (p.kind == CXType_FunctionProto || p.kind == CXType_FunctionNoProto) ++r->function_fields;
          else ++r->pointer_fields;
        }
        return CXVisit_Continue;
      },
      &r);
  return r;
}

std::optional<EnumInfo> enum_info(CXType c, const std::string& typedef_name) {
  std::string name = typedef_name.empty() ? strip_type_name(take(clang_getTypeSpelling(c))) : typedef_name;
  if (name.find("(unnamed") != std::string::npos || name.find("(anonymous") != std::string::npos) return std::nullopt;
  CXCursor decl = clang_getTypeDeclaration(c);
  struct Walk {
    bool is_unsigned;
    bool any = false;
    long long lo = 0, hi = 0;
    unsigned long long ulo = 0, uhi = 0;
    std::string min, max;
  } w{.is_unsigned = is_unsigned_kind(clang_getCanonicalType(clang_getEnumDeclIntegerType(decl)).kind)};
  clang_visitChildren(
      decl,
      [](CXCursor e, CXCursor, CXClientData d) {
        if (clang_getCursorKind(e) != CXCursor_EnumConstantDecl) return CXChildVisit_Continue;
        auto* w = static_cast<Walk*>(d);
        std::string n = take(clang_getCursorSpelling(e));
        if (w->is_unsigned) {
          unsigned long long v = clang_getEnumConstantDeclUnsignedValue(e);
          if (!w->any || v < w->ulo) w->ulo = v, w->min = n;
          if (!w->any || v > w->uhi) w->uhi = v, w->max = n;
        } else {
          long long v = clang_getEnumConstantDeclValue(e);
          if (!w->any || v < w->lo) w->lo = v, w->min = n;
          if (!w->any || v > w->hi) w->hi = v, w->max = n;
        }
        w->any = true;
        return CXChildVisit_Continue;
      },
      &w);
  if (!w.any) return std::nullopt;
  return EnumInfo{.name = name, .min = w.min, .max = w.max};
}

Level level_of(CXType p) {
  CXType c = clang_getCanonicalType(p);
  Level l{.shape = shape_of(c), .is_const = clang_isConstQualifiedType(c) != 0};
  l.is_char = is_char_kind(c.kind);
  l.is_uchar = c.kind == CXType_UChar;
  l.is_unsigned = is_unsigned_kind(c.kind);
  l.incomplete = c.kind == CXType_Record && clang_Type_getSizeOf(c) == CXTypeLayoutError_Incomplete;
  return l;
}

Signature signature_of(CXType fn, const std::vector<std::string>& names);

// `where`: the cursor the type is written at (a parameter, a typedef), for function-pointer
// parameter names; null cursor if none.
CType type_of(CXType t, CXCursor where) {
  CType ct;
  ct.spelling = take(clang_getTypeSpelling(t));
  CXType sugar = t;
  if (sugar.kind == CXType_Elaborated) sugar = clang_Type_getNamedType(sugar);
  if (sugar.kind == CXType_Typedef) ct.typedef_name = take(clang_getTypedefName(sugar));
  CXType c = clang_getCanonicalType(t);
  ct.canonical = take(clang_getTypeSpelling(c));
  ct.shape = shape_of(c);
  ct.is_unsigned = is_unsigned_kind(c.kind);
  if (ct.shape == Shape::enum_) ct.enum_info = enum_info(c, ct.typedef_name);
  if (ct.shape == Shape::record && clang_Type_getSizeOf(c) >= 0) ct.record = record_info(c, ct.spelling);
  if (ct.shape != Shape::pointer) return ct;
  // The pointee as written keeps its typedef (the struct's name); a pointer typedef (z_streamp)
  // has none to give, so its canonical pointee stands in.
  CXType p = clang_getPointeeType(sugar.kind == CXType_Typedef ? c : t);
  if (p.kind == CXType_Invalid) p = clang_getPointeeType(c);
  ct.levels.push_back(level_of(p));
  CXType pc = clang_getCanonicalType(p);
  if (pc.kind == CXType_Pointer) ct.levels.push_back(level_of(clang_getPointeeType(pc)));
  if (ct.levels[0].shape == Shape::record && !ct.levels[0].incomplete)
    ct.record = record_info(pc, take(clang_getTypeSpelling(p)));
  if (ct.levels[0].shape == Shape::function) {
    // Names from where the function type is written: the parameter itself, or its typedef.
    std::vector<std::string> names;
    if (!clang_Cursor_isNull(where)) names = parm_names(where);
    if (names.empty() && sugar.kind == CXType_Typedef) names = parm_names(clang_getTypeDeclaration(sugar));
    ct.fn = std::make_shared<Signature>(signature_of(pc, names));
    ct.spelling = take(clang_getTypeSpelling(t));
  }
  return ct;
}

Signature signature_of(CXType fn, const std::vector<std::string>& names) {
  Signature s;
  s.result = type_of(clang_getResultType(fn), clang_getNullCursor());
  s.variadic = clang_isFunctionTypeVariadic(fn) != 0;
  const int n = clang_getNumArgTypes(fn);
  for (int i = 0; i < n; ++i) {
    Param p{.type = type_of(clang_getArgType(fn, static_cast<unsigned>(i)), clang_getNullCursor())};
    if (names.size() == static_cast<std::size_t>(n)) p.name = names[static_cast<std::size_t>(i)];
    s.params.push_back(std::move(p));
  }
  return s;
}

Function function_of(CXCursor c) {
  Function f{.name = take(clang_getCursorSpelling(c))};
  CXType t = clang_getCursorType(c);
  f.sig.result = type_of(clang_getResultType(t), clang_getNullCursor());
  f.sig.variadic = clang_isFunctionTypeVariadic(t) != 0;
  const int n = clang_Cursor_getNumArguments(c);
  for (int i = 0; i < n; ++i) {
    CXCursor a = clang_Cursor_getArgument(c, static_cast<unsigned>(i));
    f.sig.params.push_back(Param{.name = take(clang_getCursorSpelling(a)), .type = type_of(clang_getCursorType(a), a)});
  }
  f.exported = clang_Cursor_getStorageClass(c) != CX_SC_Static && !clang_Cursor_isFunctionInlined(c);
  return f;
}

struct Collect {
  CXFile main = nullptr;
  Parsed out;
  std::vector<std::string> seen;
};

}  // namespace

Result<Parsed> parse_header(const std::string& header, const std::vector<std::string>& clang_args) {
  std::vector<const char*> argv{"-x", "c"};
  for (const std::string& a : clang_args) argv.push_back(a.c_str());
  std::unique_ptr<void, void (*)(CXIndex)> index(clang_createIndex(0, 0), clang_disposeIndex);
  CXTranslationUnit raw = nullptr;
  CXErrorCode rc = clang_parseTranslationUnit2(index.get(), header.c_str(), argv.data(), static_cast<int>(argv.size()),
                                               nullptr, 0, CXTranslationUnit_SkipFunctionBodies, &raw);
  if (rc != CXError_Success || raw == nullptr)
    return fail(Errc::misuse, "ward gen: libclang could not read " + header + " (error " + std::to_string(rc) + ")");
  std::unique_ptr<CXTranslationUnitImpl, void (*)(CXTranslationUnit)> tu(raw, clang_disposeTranslationUnit);
  std::string errors;
  for (unsigned i = 0, n = clang_getNumDiagnostics(tu.get()); i < n; ++i) {
    CXDiagnostic d = clang_getDiagnostic(tu.get(), i);
    if (clang_getDiagnosticSeverity(d) >= CXDiagnostic_Error && errors.size() < 2000)
      errors += "\n  " + take(clang_formatDiagnostic(d, clang_defaultDiagnosticDisplayOptions()));
    clang_disposeDiagnostic(d);
  }
  if (!errors.empty())
    return fail(Errc::misuse, "ward gen: " + header + " does not compile as C (pass -I/-D after --):" + errors);
  Collect col{.main = clang_getFile(tu.get(), header.c_str())};
  clang_visitChildren(
      clang_getTranslationUnitCursor(tu.get()),
      [](CXCursor c, CXCursor, CXClientData d) {
        if (clang_getCursorKind(c) != CXCursor_FunctionDecl) return CXChildVisit_Continue;
        auto* col = static_cast<Collect*>(d);
        std::string name = take(clang_getCursorSpelling(c));
        for (const std::string& s : col->seen)
          if (s == name) return CXChildVisit_Continue;  // redeclared: the first declaration counts
        col->seen.push_back(name);
        Function f = function_of(c);
        CXFile file = nullptr;
        clang_getExpansionLocation(clang_getCursorLocation(c), &file, nullptr, nullptr, nullptr);
        if (file && col->main && clang_File_isEqual(file, col->main)) col->out.in_header.push_back(f);
        col->out.all.push_back(std::move(f));
        return CXChildVisit_Continue;
      },
      &col);
  return std::move(col.out);
}

}  // namespace ward::gen
