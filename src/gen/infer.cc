// The inference table. Rows are tried in order; the first whose pattern matches a pointer writes
// its annotation (or its question, for a marker). Everything a row looks at is computed once per
// pointer by classify() and next_kind(), so adding a pattern is adding a row.
#include "gen/infer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

namespace ward::gen {
namespace {

// What a pointer points to, as the rows tell pointers apart.
enum class Pointee : unsigned {
  function = 1u << 0,     // a function pointer
  text = 1u << 1,         // char
  bytes = 1u << 2,        // unsigned char
  void_ = 1u << 3,        // void, not a known handle
  handle = 1u << 4,       // a void * typedef the library returns (f0r_instance_t)
  incomplete = 1u << 5,   // a struct the header never defines
  record = 1u << 6,       // a defined struct without function members
  handlers = 1u << 7,     // a defined struct with function members (a SAX handler)
  scalar = 1u << 8,       // integers, floating point, enums
  out_handle = 1u << 9,   // T ** with T incomplete or void
  text_array = 1u << 10,  // char ** (either constness of the chars)
  other = 1u << 11,       // pointers to other pointers, anything else
};
constexpr unsigned operator|(Pointee a, Pointee b) { return unsigned(a) | unsigned(b); }
constexpr unsigned operator|(unsigned a, Pointee b) { return a | unsigned(b); }
constexpr unsigned kAny = ~0u;
constexpr unsigned kMemory = Pointee::text | Pointee::bytes | Pointee::void_ | Pointee::scalar | Pointee::record;

// What the parameter after a pointer says about its size.
enum class Next : unsigned char {
  any,
  unsigned_count,  // an unsigned integer that reads as a count (size_t, `len`, unnamed)
  signed_count,    // a signed one: a negative value may mean "up to the NUL"
  count_ptr,       // a pointer to such an unsigned integer, not const (size_t *len)
};

enum class Const : unsigned char { any, yes, no };
enum class Where : unsigned char { function = 1, callback = 2, both = 3, result = 4 };
enum class Make : unsigned char {
  one,           // ward::K(i) / ward::K for results
  counted,       // ward::K(i, i + 1)
  deref_filled,  // ward::out(i, ward::deref(j)).filled(ward::deref(j)) and ward::inout(j)
  callback,      // ward::callback(i, ud) and a WARD_CALLBACK
  user_data,     // ward::user_data(i), in a callback's own declaration
  ask,           // an undecided marker with the row's question
};

struct Row {
  const char* name;
  Where where;
  unsigned pointee;  // a mask of Pointee
  Const is_const;    // of what the pointer points to (for T **: of the inner pointer)
  Next next;
  Make make;
  const char* what;  // the annotation's name, or the question ({fn} {i} {decl} {j} are filled in)
};

// The table. Parameters first (function and callback), then results.
constexpr std::array kRules{
    Row{"callback with user data", Where::function, unsigned(Pointee::function), Const::any, Next::any, Make::callback,
        "callback"},
    Row{"callback's user data", Where::callback, unsigned(Pointee::void_ | Pointee::handle), Const::no, Next::any,
        Make::user_data, "user_data"},
    Row{"function pointer without user data", Where::both, unsigned(Pointee::function), Const::any, Next::any, Make::ask,
        "{fn}: {decl} is a function pointer with no void * user data beside it: declare ward::sentinel({i}) if it "
        "only ever takes constants the library defines (SQLITE_TRANSIENT); a host function cannot cross without "
        "user data"},
    Row{"opaque object", Where::function, unsigned(Pointee::incomplete), Const::any, Next::any, Make::one, "opaque"},
    Row{"opaque handle typedef", Where::function, unsigned(Pointee::handle), Const::any, Next::any, Make::one, "opaque"},
    Row{"input buffer", Where::both, kMemory, Const::yes, Next::unsigned_count, Make::counted, "in"},
    Row{"output buffer, length through a pointer", Where::function, kMemory, Const::no, Next::count_ptr,
        Make::deref_filled, "out"},
    Row{"output buffer", Where::both, kMemory, Const::no, Next::unsigned_count, Make::counted, "out"},
    Row{"text with a signed length", Where::both, unsigned(Pointee::text), Const::yes, Next::signed_count, Make::ask,
        "{fn}: {decl} is followed by a signed length ({j}): declare ward::in({i}, {jn}) if it always counts the "
        "bytes (a negative count is then refused), or ward::cstring({i}) if a negative length means "
        "NUL-terminated"},
    Row{"buffer with a signed count", Where::both, kMemory, Const::any, Next::signed_count, Make::ask,
        "{fn}: {decl} is followed by a signed count ({j}): declare ward::in({i}, {jn}) (ward::out/inout for data "
        "the library writes) if it counts the elements; a negative count is then refused"},
    Row{"string", Where::both, unsigned(Pointee::text), Const::yes, Next::any, Make::one, "cstring"},
    Row{"out-parameter for an object", Where::function, unsigned(Pointee::out_handle), Const::no, Next::any, Make::one,
        "out_opaque"},
    Row{"array of strings", Where::both, unsigned(Pointee::text_array), Const::yes, Next::any, Make::ask,
        "{fn}: {decl} is an array of strings: declare ward::strings({i}, n) with its count parameter n, or "
        "ward::strings({i}) if it ends with NULL"},
    Row{"char ** out or in", Where::both, unsigned(Pointee::text_array), Const::no, Next::any, Make::ask,
        "{fn}: {decl}: declare ward::out_text({i}) if the library stores a string it allocated there (free it "
        "with the free function of the library, declared ward::opaque), or ward::strings({i}[, n]) if it is an array of "
        "strings"},
    Row{"struct in", Where::both, unsigned(Pointee::record), Const::yes, Next::any, Make::one, "in"},
    Row{"struct of callbacks", Where::both, unsigned(Pointee::handlers), Const::any, Next::any, Make::ask,
        "{fn}: {decl} points to a struct of function pointers: declare ward::handlers({i}, ud) with its void * "
        "user-data parameter ud and the struct with WARD_HANDLERS (iface/handlers.h), or ward::in({i}) if its "
        "function pointers are never called"},
    Row{"struct out", Where::both, unsigned(Pointee::record), Const::no, Next::any, Make::ask,
        "{fn}: {decl}: declare ward::out({i}) if the library only fills the struct, ward::inout({i}) if it also "
        "reads it, or ward::shared({i}) if the library keeps it between calls (the buffers of a stream); a struct with "
        "pointer members also needs WARD_STRUCT (iface/deep.h)"},
    Row{"memory without a count", Where::both, kMemory, Const::any, Next::any, Make::ask,
        "{fn}: {decl} has no count beside it: declare ward::in/out/inout({i}, n) with its count (a parameter, "
        "ward::elems(N), ward::deref(j)), ward::shared({i}) for sandbox memory the library keeps, or "
        "ward::opaque({i}) if it is a pointer the library gave out"},
    Row{"other pointer", Where::both, kAny, Const::any, Next::any, Make::ask,
        "{fn}: {decl}: no rule covers this pointer; see docs/annotations.md for what to declare"},
    Row{"string result", Where::result, Pointee::text | Pointee::bytes, Const::yes, Next::any, Make::one,
        "returns_string"},
    Row{"opaque result", Where::result, Pointee::incomplete | Pointee::handle, Const::any, Next::any, Make::one,
        "returns_opaque"},
    Row{"descriptor result", Where::result, unsigned(Pointee::record), Const::yes, Next::any, Make::ask,
        "{fn}: returns {decl}: declare ward::returns_deep if it points to a descriptor (its struct declared with "
        "WARD_STRUCT, iface/deep.h)"},
    Row{"other result", Where::result, kAny, Const::any, Next::any, Make::ask,
        "{fn}: returns {decl}: declare ward::returns_string, ward::returns_opaque (a pointer the host only passes "
        "back) or ward::returns_deep"},
};

Pointee classify(const CType& t, const Context& ctx) {
  const Level& l = t.levels.at(0);
  if (l.shape == Shape::function) return Pointee::function;
  if (l.incomplete) return Pointee::incomplete;
  if (ctx.handle_typedefs.contains(t.typedef_name)) return Pointee::handle;
  if (l.shape == Shape::void_) return Pointee::void_;
  if (l.is_char) return Pointee::text;
  if (l.is_uchar) return Pointee::bytes;
  if (l.shape == Shape::integer || l.shape == Shape::floating || l.shape == Shape::enum_) return Pointee::scalar;
  if (l.shape == Shape::record) {
    return t.record && t.record->is_handlers() ? Pointee::handlers : Pointee::record;
  }
  if (l.shape == Shape::pointer && t.levels.size() > 1) {
    const Level& inner = t.levels[1];
    if (inner.is_char) return Pointee::text_array;
    if (inner.incomplete || inner.shape == Shape::void_) return Pointee::out_handle;
  }
  return Pointee::other;
}

// For T **, constness that matters is the inner pointer's own (const char *const * is input).
bool pointee_const(const CType& t) { return t.levels.at(0).is_const; }

bool reads_as_count(const Param& p) {
  if (p.name.empty()) return true;  // a prototype without names: the position is all there is
  std::string n;
  for (char c : p.name) n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string_view w : {"len", "size", "count", "cap", "bytes", "num"})
    if (n.find(w) != std::string::npos) return true;
  if (p.type.typedef_name.find("size") != std::string::npos) return true;
  // n, nByte, n_items: a lone n leading a word
  return p.name == "n" || (p.name.size() > 1 && p.name[0] == 'n' && (std::isupper(static_cast<unsigned char>(p.name[1])) || p.name[1] == '_'));
}

Next next_kind(const Signature& sig, std::size_t i) {
  if (i + 1 >= sig.params.size()) return Next::any;
  const Param& p = sig.params[i + 1];
  if (p.type.shape == Shape::integer && reads_as_count(p)) return p.type.is_unsigned ? Next::unsigned_count : Next::signed_count;
  if (p.type.is_pointer() && p.type.levels[0].shape == Shape::integer && p.type.levels[0].is_unsigned &&
      !p.type.levels[0].is_const && reads_as_count(p))
    return Next::count_ptr;
  return Next::any;
}

std::string decl_of(const Param& p, std::size_t i) {
  std::string s = "param " + std::to_string(i) + " (" + p.type.spelling;
  if (!p.name.empty()) s += (s.back() == '*' ? "" : " ") + p.name;
  return s + ")";
}

std::string fill(std::string_view tmpl, const std::string& fn, std::size_t i, const std::string& decl,
                 const Signature* sig) {
  std::string out;
  for (std::size_t k = 0; k < tmpl.size(); ++k) {
    auto take = [&](std::string_view key, const std::string& v) {
      if (tmpl.substr(k, key.size()) != key) return false;
      out += v;
      k += key.size() - 1;
      return true;
    };
    std::string j = sig && i + 1 < sig->params.size() ? decl_of(sig->params[i + 1], i + 1) : "";
    if (take("{fn}", fn) || take("{i}", std::to_string(i)) || take("{decl}", decl) || take("{jn}", std::to_string(i + 1)) ||
        take("{j}", j))
      continue;
    out += tmpl[k];
  }
  return out;
}

bool row_fits(const Row& r, Where where, Pointee k, bool is_const, Next next) {
  if ((unsigned(r.where) & unsigned(where)) == 0) return false;
  if ((r.pointee & unsigned(k)) == 0) return false;
  if (r.is_const != Const::any && (r.is_const == Const::yes) != is_const) return false;
  return r.next == Next::any || r.next == next;
}

// The void * that carries a callback's user data: a neighbour first, then any other free one.
int user_data_for(const Signature& sig, std::size_t fnp, const std::vector<bool>& taken, const Context& ctx) {
  auto ok = [&](std::size_t j) {
    if (j >= sig.params.size() || taken[j]) return false;
    const CType& t = sig.params[j].type;
    return t.is_pointer() && t.levels.size() == 1 && t.levels[0].shape == Shape::void_ && !t.levels[0].is_const &&
           !ctx.handle_typedefs.contains(t.typedef_name);
  };
  if (ok(fnp + 1)) return static_cast<int>(fnp + 1);
  if (fnp > 0 && ok(fnp - 1)) return static_cast<int>(fnp - 1);
  for (std::size_t j = 0; j < sig.params.size(); ++j)
    if (ok(j)) return static_cast<int>(j);
  return -1;
}

void collect_enum(const CType& t, std::vector<EnumInfo>& enums) {
  if (!t.enum_info || t.enum_info->name.empty()) return;
  for (const EnumInfo& e : enums)
    if (e.name == t.enum_info->name) return;
  enums.push_back(*t.enum_info);
}

std::string callback_alias(const std::string& fn, const Param& p, std::size_t i) {
  return fn + "_" + (p.name.empty() ? "arg" + std::to_string(i) : p.name) + "_fn";
}

// Infers a signature's annotations: a library function's (Where::function) or a callback's.
void infer_signature(const std::string& fn, const Signature& sig, Where where, const Context& ctx, Decl& d) {
  std::vector<bool> taken(sig.params.size(), false);
  for (std::size_t i = 0; i < sig.params.size(); ++i) collect_enum(sig.params[i].type, d.enums);
  collect_enum(sig.result, d.enums);
  bool have_user_data = false;
  for (std::size_t i = 0; i < sig.params.size(); ++i) {
    if (taken[i]) continue;
    const Param& p = sig.params[i];
    if (!p.type.is_pointer()) continue;
    const Pointee k = classify(p.type, ctx);
    const Next next = next_kind(sig, i);
    const std::string decl = decl_of(p, i);
    for (const Row& r : kRules) {
      if (!row_fits(r, where, k, pointee_const(p.type), next)) continue;
      Annotation a{.param = static_cast<int>(i), .rule = r.name};
      const std::string idx = std::to_string(i);
      if (r.make == Make::callback) {
        const int ud = user_data_for(sig, i, taken, ctx);
        if (ud < 0) continue;  // no user data: a later row asks
        taken[static_cast<std::size_t>(ud)] = true;
        a.covers.push_back(ud);
        a.text = "ward::callback(" + idx + ", " + std::to_string(ud) + ")";
        CallbackDecl cb;
        cb.canonical = p.type.canonical;
        if (!p.type.typedef_name.empty()) {
          cb.alias = p.type.typedef_name;
        } else {
          cb.alias = callback_alias(fn, p, i);
          cb.type = p.type.spelling;
        }
        Decl inner{.name = cb.alias};
        infer_signature(cb.alias, *p.type.fn, Where::callback, ctx, inner);
        cb.anns = std::move(inner.anns);
        for (EnumInfo& e : inner.enums) collect_enum(CType{.enum_info = e}, d.enums);
        d.callbacks.push_back(std::move(cb));
      } else if (r.make == Make::user_data) {
        if (have_user_data) continue;  // exactly one per callback; a second void * needs a row below
        have_user_data = true;
        a.text = "ward::user_data(" + idx + ")";
      } else if (r.make == Make::one) {
        a.text = std::string("ward::") + r.what + "(" + idx + ")";
      } else if (r.make == Make::counted) {
        taken[i + 1] = true;
        a.text = std::string("ward::") + r.what + "(" + idx + ", " + std::to_string(i + 1) + ")";
      } else if (r.make == Make::deref_filled) {
        const std::string j = std::to_string(i + 1);
        taken[i + 1] = true;
        a.covers.push_back(static_cast<int>(i + 1));
        a.text = "ward::out(" + idx + ", ward::deref(" + j + ")).filled(ward::deref(" + j + ")), ward::inout(" + j + ")";
      } else {
        a.undecided = true;
        a.text = fill(r.what, fn, i, decl, &sig);
      }
      d.anns.push_back(std::move(a));
      break;
    }
  }
  if (where == Where::function && sig.result.is_pointer()) {
    const Pointee k = classify(sig.result, ctx);
    for (const Row& r : kRules) {
      if (!row_fits(r, Where::result, k, pointee_const(sig.result), Next::any)) continue;
      Annotation a{.rule = r.name};
      if (r.make == Make::one) {
        a.text = std::string("ward::") + r.what;
      } else {
        a.undecided = true;
        a.text = fill(r.what, fn, 0, sig.result.spelling, nullptr);
      }
      d.anns.push_back(std::move(a));
      break;
    }
  }
}

// Why a function cannot be declared at all, or "".
std::string undeclarable(const Function& fn) {
  if (fn.sig.variadic) return "variadic (printf-style): ward cannot call it";
  if (!fn.exported) return "static or inline in the header: no symbol to bind";
  if (fn.sig.params.size() > 12) return "more than 12 parameters";
  auto bad_value = [](const CType& t) {
    return t.shape == Shape::record && t.record && (t.record->pointer_fields + t.record->function_fields) > 0;
  };
  if (bad_value(fn.sig.result)) return "returns a struct with pointer members by value";
  for (const Param& p : fn.sig.params) {
    if (bad_value(p.type)) return "takes a struct with pointer members by value";
    if (p.type.canonical.find("__va_list_tag") != std::string::npos) return "takes a va_list: ward cannot pass one";
  }
  return "";
}

}  // namespace

Context context_for(const std::vector<Function>& fns) {
  Context c;
  for (const Function& f : fns) {
    const CType& r = f.sig.result;
    // A named pointer type the library hands out (f0r_instance_t, gzFile): what the host holds.
    if (r.is_pointer() && !r.typedef_name.empty() && !r.is_fn_pointer()) c.handle_typedefs.insert(r.typedef_name);
  }
  return c;
}

Decl infer(const Function& fn, const Context& ctx) {
  Decl d{.name = fn.name};
  d.skipped = undeclarable(fn);
  if (!d.skipped.empty()) return d;
  infer_signature(fn.name, fn.sig, Where::function, ctx, d);
  return d;
}

std::vector<std::string> rule_names() {
  std::vector<std::string> v;
  for (const Row& r : kRules) v.emplace_back(r.name);
  return v;
}

}  // namespace ward::gen
