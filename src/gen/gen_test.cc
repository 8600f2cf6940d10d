// ward gen (src/gen/gen.h). Real headers the examples use: the generated declaration for the
// functions a person declared by hand (examples/real) must agree with every annotation it
// writes, leave a marker on exactly the pointers the person had to decide, compile once those
// markers are answered with the person's answers, and fail to compile with every marker's
// question as it stands. Fresh headers (src/gen/testdata) and zlib's, which no hand-written
// declaration covers: exact expected annotations, and the output compiles. Compiling runs the
// compiler that builds ward (WARD_CXX) on a temporary file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gen/gen.h"

namespace ward::gen {
namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Splits at commas outside parentheses, angle-bracketed markers and string literals.
std::vector<std::string> split_top(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  bool in_str = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (in_str) {
      if (c == '\\' && i + 1 < s.size()) cur += c, c = s[++i];
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '(' || c == '<') {
      ++depth;
    } else if (c == ')' || c == '>') {
      --depth;
    } else if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
      continue;
    }
    cur += c;
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string squeeze(const std::string& s) {
  std::string o;
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) o += c;
  return o;
}

// The text of every `MACRO( ... )` in src (the parenthesised part, without the parentheses).
std::vector<std::string> macro_bodies(const std::string& src, const std::string& macro) {
  std::vector<std::string> out;
  for (std::size_t at = 0; (at = src.find(macro + "(", at)) != std::string::npos;) {
    if (at > 0 && (std::isalnum(static_cast<unsigned char>(src[at - 1])) || src[at - 1] == '_')) {
      ++at;
      continue;
    }
    std::size_t b = at + macro.size() + 1;
    int depth = 1;
    std::size_t e = b;
    for (; e < src.size() && depth > 0; ++e) depth += src[e] == '(' ? 1 : src[e] == ')' ? -1 : 0;
    out.push_back(src.substr(b, e - b - 1));
    at = e;
  }
  return out;
}

// An annotation as the comparison sees it: ward:: and spaces dropped, .filled(...) dropped,
// "" for what types cannot say (recovery rules, nullable, releases).
std::string normal(std::string a) {
  a = squeeze(a);
  if (a.starts_with("ward::")) a = a.substr(6);
  if (auto f = a.find(".filled("); f != std::string::npos) a = a.substr(0, f);
  for (std::string_view sem : {"idempotent", "replay_after_restart", "replay_latest", "nullable(", "releases("})
    if (a.starts_with(sem)) return "";
  return a;
}
// The parameter an annotation names first (-1: the function or its result); its peer (-1: none).
int first_index(const std::string& a) {
  std::smatch m;
  return std::regex_search(a, m, std::regex(R"(^[a-z_]+\((\d+))")) ? std::stoi(m[1]) : -1;
}
int peer_index(const std::string& a) {
  std::smatch m;
  return std::regex_search(a, m, std::regex(R"(^(callback|handlers)\(\d+,(\d+)\))")) ? std::stoi(m[2]) : -1;
}

struct Hand {
  std::map<std::string, std::vector<std::string>> fns;  // normalised, non-empty
  std::vector<std::vector<std::string>> callbacks;      // WARD_CALLBACK annotation lists, in order
  std::vector<std::string> order;                       // function names in order of first appearance
  std::string prelude;                                  // its WARD_STRUCT and WARD_HANDLERS statements
};

Hand read_hand(const std::string& path) {
  const std::string src = read_file(path);
  Hand h;
  for (const std::string& lib : macro_bodies(src, "WARD_LIBRARY")) {
    auto entries = split_top(lib);
    for (std::size_t i = 1; i < entries.size(); ++i) {
      std::string e = squeeze(entries[i]);
      if (e.size() < 2 || e.front() != '(') continue;  // the frei0r macro's parameters
      auto parts = split_top(e.substr(1, e.size() - 2));
      const std::string name = parts.at(0);
      std::vector<std::string> anns;
      for (std::size_t k = 1; k < parts.size(); ++k)
        if (auto n = normal(parts[k]); !n.empty()) anns.push_back(n);
      if (!h.fns.contains(name)) h.order.push_back(name), h.fns[name] = anns;
    }
  }
  for (const std::string& cb : macro_bodies(src, "WARD_CALLBACK")) {
    auto parts = split_top(cb);
    std::vector<std::string> anns;
    for (std::size_t k = 1; k < parts.size(); ++k)
      if (auto n = normal(parts[k]); !n.empty()) anns.push_back(n);
    h.callbacks.push_back(anns);
  }
  for (const char* m : {"WARD_STRUCT", "WARD_HANDLERS"})
    for (const std::string& b : macro_bodies(src, m)) h.prelude += std::string(m) + "(" + b + ");\n";
  return h;
}

// Compiles `text` as a C++ translation unit; returns the exit status and the compiler's output.
std::pair<int, std::string> compile(const std::string& text) {
  char dir_tmpl[] = "/tmp/ward-gen-test.XXXXXX";
  const char* dir = mkdtemp(dir_tmpl);
  if (!dir) return {-1, "mkdtemp failed"};
  // The declaration is a header (#pragma once): a translation unit includes it.
  const std::string src = std::string(dir) + "/gen.cc", log = std::string(dir) + "/log";
  std::ofstream(std::string(dir) + "/decl.h") << text;
  std::ofstream(src) << "#include \"decl.h\"\n";
  const std::string cmd = std::string(WARD_CXX) + " -std=c++2b -fsyntax-only -Wall -Werror -I" + WARD_SOURCE_DIR +
                          "/include -I" + WARD_LIBXML2_INCLUDE + " " + src + " > " + log + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::string out = read_file(log);
  fs::remove_all(dir);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

std::vector<std::string> decided_texts(const Annotation& a) {
  std::vector<std::string> v;
  for (const std::string& p : split_top(a.text)) v.push_back(normal(p));
  return v;
}

// The generated text with each marker replaced by the hand-written answer for its parameter
// (nothing, when the person's answer is the peer of another annotation: handlers(0, 1)).
std::string answered(const Generated& g, const Hand& h, std::string text) {
  auto replace_marker = [&](const Annotation& a, const std::vector<std::string>& hand) {
    std::string answer;
    for (const std::string& x : hand)
      if (first_index(x) == a.param) answer += (answer.empty() ? "" : ", ") + ("ward::" + x);
    std::string marker = "ward::undecided<\"" + a.text + "\">";
    auto at = text.find(marker);
    if (at == std::string::npos) return;
    std::size_t len = marker.size();
    if (answer.empty()) {  // drop the marker and its comma
      at -= 2;
      len += 2;
    }
    text.replace(at, len, answer);
  };
  std::size_t cb = 0;
  for (const Decl& d : g.decls) {
    for (const Annotation& a : d.anns)
      if (a.undecided) replace_marker(a, h.fns.at(d.name));
    for (const CallbackDecl& c : d.callbacks) {
      for (const Annotation& a : c.anns)
        if (a.undecided && cb < h.callbacks.size()) replace_marker(a, h.callbacks[cb]);
      ++cb;
    }
  }
  const std::string inc = "#include \"ward/ward.h\"\n";
  text.replace(text.find(inc), inc.size(),
               inc + "#include \"ward/iface/deep.h\"\n#include \"ward/iface/handlers.h\"\n" + h.prelude);
  return text;
}

struct RealCase {
  const char* hand;    // examples/real/...
  const char* header;
  std::vector<std::string> clang_args;
  const char* include;
  // What ward gen leaves to the person: "function:param" (result: -1), in order.
  std::vector<std::string> expected_undecided;
};

class RealHeaders : public testing::TestWithParam<RealCase> {};

TEST_P(RealHeaders, AgreesWithTheHandWrittenDeclarationAndAsksForTheRest) {
  const RealCase& rc = GetParam();
  if (!fs::exists(rc.header)) GTEST_SKIP() << rc.header << " is not installed (scripts/setup.sh)";
  const Hand h = read_hand(std::string(WARD_SOURCE_DIR) + "/examples/real/" + rc.hand);
  ASSERT_FALSE(h.order.empty());
  auto g = generate({.header = rc.header, .functions = h.order, .include = rc.include, .clang_args = rc.clang_args});
  ASSERT_TRUE(g) << g.error().detail;

  std::vector<std::string> undecided;
  for (const Decl& d : g->decls) {
    ASSERT_TRUE(d.skipped.empty()) << d.name << ": " << d.skipped;
    const std::vector<std::string>& hand = h.fns.at(d.name);
    std::set<int> asked;
    std::set<std::string> wrote;
    for (const Annotation& a : d.anns) {
      if (a.undecided) {
        asked.insert(a.param);
        undecided.push_back(d.name + ":" + std::to_string(a.param));
        continue;
      }
      for (const std::string& t : decided_texts(a)) {
        wrote.insert(t);
        EXPECT_TRUE(std::find(hand.begin(), hand.end(), t) != hand.end())
            << d.name << ": ward gen wrote " << t << ", the hand-written declaration does not say it";
      }
    }
    for (const std::string& x : hand) {
      const int i = first_index(x);
      bool peer_of_asked = false;  // handlers(0, 1) answers the question on param 1 as well
      for (const std::string& y : hand) peer_of_asked |= peer_index(y) >= 0 && asked.contains(first_index(y)) && asked.contains(peer_index(y));
      EXPECT_TRUE(wrote.contains(x) || asked.contains(i) || peer_of_asked)
          << d.name << ": the hand-written " << x << " is neither written nor asked for";
    }
    // Each question is on a pointer the person declared (directly, or as a peer).
    for (int i : asked) {
      bool declared = false;
      for (const std::string& x : hand) declared |= first_index(x) == i || peer_index(x) == i;
      if (i == -1)
        for (const std::string& x : hand) declared |= x.starts_with("returns_");
      EXPECT_TRUE(declared) << d.name << ": asks about param " << i << ", which the person left alone";
    }
  }
  EXPECT_EQ(undecided, rc.expected_undecided);

  // As generated: every marker's question is in the compiler's error output.
  auto [status, out] = compile(g->text);
  if (g->undecided == 0) {
    EXPECT_EQ(status, 0) << out << "\n" << g->text;
  } else {
    EXPECT_NE(status, 0) << g->text;
    for (const Decl& d : g->decls)
      for (const Annotation& a : d.anns)
        if (a.undecided) {
          EXPECT_NE(out.find(a.text), std::string::npos) << "no error says: " << a.text;
        }
  }
  // Answered with the person's answers, it compiles.
  const std::string done = answered(*g, h, g->text);
  EXPECT_EQ(done.find("undecided<"), std::string::npos) << done;
  auto [status2, out2] = compile(done);
  EXPECT_EQ(status2, 0) << out2 << "\n" << done;
}

INSTANTIATE_TEST_SUITE_P(
    Examples, RealHeaders,
    testing::Values(
        RealCase{"zstd/zstd_api.h", "/usr/include/zstd.h", {}, "<zstd.h>",
                 {"ZSTD_compressStream2:1", "ZSTD_compressStream2:2", "ZSTD_decompressStream:1",
                  "ZSTD_decompressStream:2"}},
        RealCase{"sqlite/sqlite_api.h", "/usr/include/sqlite3.h", {}, "<sqlite3.h>",
                 {"sqlite3_exec:4", "sqlite3_free:0", "sqlite3_prepare_v2:1", "sqlite3_prepare_v2:4",
                  "sqlite3_bind_text:2", "sqlite3_bind_text:4", "sqlite3_bind_blob:2", "sqlite3_bind_blob:4"}},
        RealCase{"libxml2/sax.h", "/usr/include/libxml2/libxml/parser.h", {"-I/usr/include/libxml2"},
                 "<libxml/parser.h>", {"xmlSAXUserParseMemory:0", "xmlSAXUserParseMemory:1", "xmlSAXUserParseMemory:2"}},
        RealCase{"frei0r/frei0r_ward.h", "/usr/include/frei0r.h", {}, "<frei0r.h>",
                 {"f0r_get_plugin_info:0", "f0r_get_param_info:0", "f0r_set_param_value:1", "f0r_get_param_value:1",
                  "f0r_update:2", "f0r_update:3"}}),
    [](const testing::TestParamInfo<RealCase>& i) {
      std::string n = i.param.hand;
      return n.substr(0, n.find('/'));
    });

// ---- headers no declaration covers ------------------------------------------------------------

std::map<std::string, std::string> annotations_by_function(const Generated& g) {
  std::map<std::string, std::string> m;
  for (const Decl& d : g.decls) {
    std::string s;
    for (const Annotation& a : d.anns) s += (s.empty() ? "" : " ") + (a.undecided ? "?" + std::to_string(a.param) : squeeze(a.text));
    m[d.name] = s;
  }
  return m;
}

std::string testdata(const char* f) { return std::string(WARD_SOURCE_DIR) + "/src/gen/testdata/" + f; }

TEST(FreshHeaders, OpaqueHandlesBuffersAndOutParametersAreDecidedAndCompile) {
  auto g = generate({.header = testdata("handles.h"), .clang_args = {}});
  ASSERT_TRUE(g) << g.error().detail;
  EXPECT_EQ(g->undecided, 0);
  const std::map<std::string, std::string> want{
      {"kv_open", "ward::cstring(0) ward::returns_opaque"},
      {"kv_open_into", "ward::cstring(0) ward::out_opaque(1)"},
      {"kv_close", "ward::opaque(0)"},
      {"kv_put", "ward::opaque(0) ward::cstring(1) ward::in(2,3)"},
      {"kv_get", "ward::opaque(0) ward::cstring(1) ward::out(2,ward::deref(3)).filled(ward::deref(3)),ward::inout(3)"},
      {"kv_read_block", "ward::opaque(0) ward::out(2,3)"},
      {"kv_strerror", "ward::returns_string"},
      {"kv_checksum", "ward::in(0,1)"}};
  EXPECT_EQ(annotations_by_function(*g), want);
  EXPECT_NE(g->text.find("struct ward::enum_range<kv_status>"), std::string::npos);
  EXPECT_NE(g->text.find("min = KV_EIO"), std::string::npos);
  EXPECT_NE(g->text.find("max = KV_FULL"), std::string::npos);
  auto [status, out] = compile("#include <cstdint>\n" + g->text);
  EXPECT_EQ(status, 0) << out << "\n" << g->text;
}

TEST(FreshHeaders, CallbacksWithUserDataAndNestedStructsAreDecidedAndCompile) {
  auto g = generate({.header = testdata("events.h"), .name = "events"});
  ASSERT_TRUE(g) << g.error().detail;
  EXPECT_EQ(g->undecided, 0) << g->text;
  const std::map<std::string, std::string> want{
      {"ev_bus_new", "ward::returns_opaque"},
      {"ev_subscribe", "ward::opaque(0) ward::cstring(1) ward::callback(2,3)"},
      {"ev_each_rect", "ward::opaque(0) ward::callback(1,2)"},
      {"ev_publish", "ward::opaque(0) ward::cstring(1) ward::in(2,3)"},
      {"ev_area", ""},
      {"ev_contains", "ward::in(0)"},
      {"ev_bounds", "ward::in(0,1) ward::out(2,3)"},
      {"ev_bus_free", "ward::opaque(0)"}};
  EXPECT_EQ(annotations_by_function(*g), want);
  EXPECT_NE(g->text.find("WARD_CALLBACK(ev_handler, ward::user_data(0), ward::cstring(2), ward::in(3, 4));"),
            std::string::npos) << g->text;
  EXPECT_NE(g->text.find("using ev_each_rect_visit_fn = void (*)(const struct ev_rect *, void *);\n"
                         "WARD_CALLBACK(ev_each_rect_visit_fn, ward::in(0), ward::user_data(1));"),
            std::string::npos) << g->text;
  EXPECT_NE(g->text.find("WARD_LIBRARY(events,"), std::string::npos);
  auto [status, out] = compile(g->text);
  EXPECT_EQ(status, 0) << out << "\n" << g->text;
}

TEST(FreshHeaders, EveryUndecidablePointerFailsTheBuildWithItsQuestion) {
  auto g = generate({.header = testdata("undecidable.h")});
  ASSERT_TRUE(g) << g.error().detail;
  const std::map<std::string, std::string> want{
      {"und_gets", "?0 ?-1"}, {"und_fill", "?0"}, {"und_parse", "?0"}, {"und_split", "ward::cstring(0) ?1"},
      {"und_release", "?0"}, {"und_register", "?0"}};
  EXPECT_EQ(annotations_by_function(*g), want);
  EXPECT_EQ(g->undecided, 7);
  auto [status, out] = compile(g->text);
  EXPECT_NE(status, 0);
  int questions = 0;
  for (const Decl& d : g->decls)
    for (const Annotation& a : d.anns)
      if (a.undecided) {  // NOLINT
        ++questions;
        EXPECT_NE(out.find(a.text), std::string::npos) << "no error says: " << a.text << "\n" << out;
      }
  EXPECT_EQ(questions, 7);
  EXPECT_NE(out.find("ward gen left a pointer undecided"), std::string::npos) << out;
  EXPECT_NE(out.find("und_parse: param 0 (const char *text) is followed by a signed length"), std::string::npos) << out;
}

// zlib: a real header from Debian that no example declares.
TEST(OtherRealHeader, ZlibDecidedFunctionsCompileAndTheRestAsk) {
  if (!fs::exists("/usr/include/zlib.h")) GTEST_SKIP() << "zlib.h is not installed (zlib1g-dev, scripts/setup.sh)";
  auto g = generate({.header = "/usr/include/zlib.h",
                     .functions = {"zlibVersion", "compress", "compress2", "compressBound", "uncompress", "crc32",
                                   "adler32", "gzopen", "gzread", "gzwrite", "gzclose", "gzerror", "zError"}});
  ASSERT_TRUE(g) << g.error().detail;
  auto m = annotations_by_function(*g);
  EXPECT_EQ(m["compress"], "ward::out(0,ward::deref(1)).filled(ward::deref(1)),ward::inout(1) ward::in(2,3)");
  EXPECT_EQ(m["gzopen"], "ward::cstring(0) ward::cstring(1) ward::returns_opaque");  // gzFile: a handle gzopen returns
  EXPECT_EQ(m["gzread"], "ward::opaque(0) ward::out(1,2)");
  EXPECT_EQ(m["gzwrite"], "ward::opaque(0) ward::in(1,2)");
  EXPECT_EQ(m["gzerror"], "ward::opaque(0) ?1 ward::returns_string");  // int *errnum: one int, or an array?
  EXPECT_EQ(g->undecided, 1);
  auto [status, out] = compile(g->text);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("gzerror: param 1 (int *errnum)"), std::string::npos) << out;
  // Without gzerror everything is decided: it compiles.
  auto g2 = generate({.header = "/usr/include/zlib.h",
                      .functions = {"zlibVersion", "compress", "compress2", "compressBound", "uncompress", "crc32",
                                    "adler32", "gzopen", "gzread", "gzwrite", "gzclose", "zError"}});
  ASSERT_TRUE(g2);
  auto [status2, out2] = compile(g2->text);
  EXPECT_EQ(status2, 0) << out2 << "\n" << g2->text;
  // The whole header: read, every variadic function skipped with its reason.
  auto all = generate({.header = "/usr/include/zlib.h"});
  ASSERT_TRUE(all) << all.error().detail;
  EXPECT_NE(all->text.find("// gzprintf: not declared: variadic"), std::string::npos);
  EXPECT_GT(all->decls.size(), 60u);
}

TEST(Errors, AMissingHeaderOrFunctionIsNamed) {
  auto g = generate({.header = "/nonexistent/x.h"});
  ASSERT_FALSE(g);
  EXPECT_NE(g.error().detail.find("/nonexistent/x.h"), std::string::npos) << g.error().detail;
  auto h = generate({.header = testdata("handles.h"), .functions = {"kv_open", "kv_nope"}});
  ASSERT_FALSE(h);
  EXPECT_NE(h.error().detail.find("declares no function kv_nope"), std::string::npos) << h.error().detail;
}

}  // namespace
}  // namespace ward::gen
