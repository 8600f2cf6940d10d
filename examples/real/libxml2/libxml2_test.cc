// libxml2's SAX parser (Debian's libxml2.so.2, unmodified) in a sandbox, through a struct of
// callbacks and its user data (iface/handlers.h): every event the host's handlers see through ward
// is compared, event for event, with the same handlers on the same document parsed by libxml2
// linked into this process. Then what a hostile library does with the handler struct, and a
// parse retried after the extension is killed in the middle of it.
#include <gtest/gtest.h>
#include <libxml/parser.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "libxml2/sax.h"
#include "ward/iface/handlers.h"
#include "ward/ward.h"

namespace {

// What the handlers saw, one line per event.
struct Recorder {
  std::vector<std::string> events;
  std::function<void(Recorder&)> after_event;  // runs after each event is recorded
};

std::string str(const xmlChar* s) { return s ? reinterpret_cast<const char*>(s) : "(null)"; }
std::string text(const xmlChar* s, int n) { return n > 0 ? std::string(reinterpret_cast<const char*>(s), static_cast<std::size_t>(n)) : ""; }

void add(void* ctx, std::string e) {
  auto& r = *static_cast<Recorder*>(ctx);
  r.events.push_back(std::move(e));
  if (r.after_event) r.after_event(r);
}

void on_internal_subset(void* ctx, const xmlChar* name, const xmlChar* ext, const xmlChar* sys) {
  add(ctx, "internalSubset " + str(name) + " " + str(ext) + " " + str(sys));
}
void on_external_subset(void* ctx, const xmlChar* name, const xmlChar* ext, const xmlChar* sys) {
  add(ctx, "externalSubset " + str(name) + " " + str(ext) + " " + str(sys));
}
int on_is_standalone(void* ctx) {
  add(ctx, "isStandalone?");
  return 0;
}
int on_has_internal(void* ctx) {
  add(ctx, "hasInternalSubset?");
  return 1;
}
int on_has_external(void* ctx) {
  add(ctx, "hasExternalSubset?");
  return 0;
}
void on_entity_decl(void* ctx, const xmlChar* name, int type, const xmlChar* pub, const xmlChar* sys, xmlChar* content) {
  add(ctx, "entityDecl " + str(name) + " " + std::to_string(type) + " " + str(pub) + " " + str(sys) + " " + str(content));
}
void on_notation_decl(void* ctx, const xmlChar* name, const xmlChar* pub, const xmlChar* sys) {
  add(ctx, "notationDecl " + str(name) + " " + str(pub) + " " + str(sys));
}
void on_unparsed_decl(void* ctx, const xmlChar* name, const xmlChar* pub, const xmlChar* sys, const xmlChar* notation) {
  add(ctx, "unparsedEntityDecl " + str(name) + " " + str(pub) + " " + str(sys) + " " + str(notation));
}
void on_start_document(void* ctx) { add(ctx, "startDocument"); }
void on_end_document(void* ctx) { add(ctx, "endDocument"); }
void on_start(void* ctx, const xmlChar* name, const xmlChar** atts) {
  std::string e = "start " + str(name);
  for (int i = 0; atts && atts[i]; i += 2) e += " " + str(atts[i]) + "=\"" + str(atts[i + 1]) + "\"";
  add(ctx, e);
}
void on_end(void* ctx, const xmlChar* name) { add(ctx, "end " + str(name)); }
void on_reference(void* ctx, const xmlChar* name) { add(ctx, "reference " + str(name)); }
void on_characters(void* ctx, const xmlChar* ch, int len) { add(ctx, "text " + text(ch, len)); }
void on_whitespace(void* ctx, const xmlChar* ch, int len) { add(ctx, "whitespace " + text(ch, len)); }
void on_pi(void* ctx, const xmlChar* target, const xmlChar* data) { add(ctx, "pi " + str(target) + " " + str(data)); }
void on_comment(void* ctx, const xmlChar* value) { add(ctx, "comment " + str(value)); }
void on_cdata(void* ctx, const xmlChar* value, int len) { add(ctx, "cdata " + text(value, len)); }

// Every declared field set, as a C host fills its handler struct.
xmlSAXHandler full_handlers() {
  xmlSAXHandler h;
  std::memset(&h, 0, sizeof h);
  h.internalSubset = on_internal_subset;
  h.externalSubset = on_external_subset;
  h.isStandalone = on_is_standalone;
  h.hasInternalSubset = on_has_internal;
  h.hasExternalSubset = on_has_external;
  h.entityDecl = on_entity_decl;
  h.notationDecl = on_notation_decl;
  h.unparsedEntityDecl = on_unparsed_decl;
  h.startDocument = on_start_document;
  h.endDocument = on_end_document;
  h.startElement = on_start;
  h.endElement = on_end;
  h.reference = on_reference;
  h.characters = on_characters;
  h.ignorableWhitespace = on_whitespace;
  h.processingInstruction = on_pi;
  h.comment = on_comment;
  h.cdataBlock = on_cdata;
  return h;
}

struct Parsed {
  int rc = 0;
  std::vector<std::string> events;
};

// libxml2 linked into this process, the reference.
Parsed direct(const std::string& doc, xmlSAXHandler h = full_handlers()) {
  Recorder r;
  const int rc = xmlSAXUserParseMemory(&h, &r, doc.data(), static_cast<int>(doc.size()));
  return {rc, std::move(r.events)};
}

template <class Lib>
Parsed sandboxed(Lib& lib, const std::string& doc, xmlSAXHandler h = full_handlers()) {
  Recorder r;
  auto rc = lib->xmlSAXUserParseMemory(&h, &r, doc.data(), static_cast<int>(doc.size()));
  EXPECT_TRUE(rc) << rc.error().message();
  return {rc ? rc->unverified_value_i_trust_it() : -1000, std::move(r.events)};
}

void expect_same(const Parsed& want, const Parsed& got, const std::string& what) {
  EXPECT_EQ(want.rc, got.rc) << what;
  ASSERT_EQ(want.events.size(), got.events.size()) << what;
  for (std::size_t i = 0; i < want.events.size(); ++i) ASSERT_EQ(want.events[i], got.events[i]) << what << ", event " << i;
}

// libxml2 reports errors through its generic error function: quiet in this process (the
// extension's copy writes to its own stderr, which ward captures).
void quiet(void*, const char*, ...) {}

ward::Policy policy() {
  auto p = ward::Policy::builder().arena_size(8u << 20).discard_output().build();
  EXPECT_TRUE(p) << p.error().message();
  return *p;
}

using Lib = ward::Instance<libxml2_sax>;

struct Libxml2Sax : ::testing::Test {
  static void SetUpTestSuite() { xmlSetGenericErrorFunc(nullptr, quiet); }
  void SetUp() override {
    auto l = Lib::open("libxml2.so.2", policy());
    ASSERT_TRUE(l) << l.error().message();
    lib.emplace(std::move(*l));
  }
  std::optional<Lib> lib;
};

// Documents that exercise every declared handler: attributes (none, many, entities and character
// references in values), nesting, text in UTF-8, comments, processing instructions, CDATA,
// predefined and declared entities, a DOCTYPE with entity, notation and unparsed-entity
// declarations, whitespace, and one large enough for many thousand crossings.
std::vector<std::pair<std::string, std::string>> generated_documents() {
  std::vector<std::pair<std::string, std::string>> docs;
  docs.emplace_back("plain", "<?xml version=\"1.0\"?><root/>");
  docs.emplace_back("mixed",
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<?xml-stylesheet href=\"s.css\" type=\"text/css\"?>\n"
                    "<!-- before the root -->\n"
                    "<library xmlns=\"urn:x\" name=\"city &amp; county\" id='42'>\n"
                    "  <book isbn=\"0-13\" lang=\"fr\" rating=\"&#x2605;&#x2605;\">Les Mis\xc3\xa9rables &lt;abridged&gt;</book>\n"
                    "  <empty/><empty a=\"\"/>\n"
                    "  <![CDATA[raw <markup> & stuff]]>\n"
                    "  <?process me?>\n"
                    "  <!-- a comment with \xe2\x82\xac -->\n"
                    "  <deep><deeper><deepest>t</deepest></deeper></deep>\n"
                    "</library>\n"
                    "<!-- after the root -->\n");
  docs.emplace_back("doctype",
                    "<?xml version=\"1.0\" standalone=\"no\"?>\n"
                    "<!DOCTYPE note SYSTEM \"note.dtd\" [\n"
                    "  <!ELEMENT note (#PCDATA|to)*>\n"
                    "  <!ENTITY writer \"Donald Duck.\">\n"
                    "  <!ENTITY copyright PUBLIC \"-//W3C//TEXT copyright//EN\" \"http://www.w3.org/xmlspec/copyright.xml\">\n"
                    "  <!NOTATION gif PUBLIC \"image/gif\">\n"
                    "  <!ENTITY logo SYSTEM \"logo.gif\" NDATA gif>\n"
                    "]>\n"
                    "<note>Written by &writer; &amp; &#65;<to>you</to></note>\n");
  std::string many = "<r>";
  for (int i = 0; i < 24; ++i) many += "<e a" + std::to_string(i) + "=\"v" + std::to_string(i) + "\"/>";
  many += "<all";
  for (int i = 0; i < 40; ++i) many += " k" + std::to_string(i) + "=\"" + std::string(static_cast<std::size_t>(i), 'x') + "\"";
  many += "/></r>";
  docs.emplace_back("many attributes", many);
  std::string big = "<?xml version=\"1.0\"?>\n<items>\n";
  for (int i = 0; i < 3000; ++i)
    big += "  <item n=\"" + std::to_string(i) + "\" odd=\"" + (i % 2 ? "yes" : "no") + "\">text " + std::to_string(i) +
           (i % 7 ? "" : "<!-- seventh -->") + "</item>\n";
  big += "</items>\n";
  docs.emplace_back("3000 items", big);
  return docs;
}

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(Libxml2SaxCopy, TheExtensionSeesDeclaredFieldsOnly) {
  xmlSAXHandler h = full_handlers();
  h.comment = nullptr;  // declared, left null by the host
  h.initialized = 0x1234;
  h._private = &h;  // a host address: must not reach the extension
  h.error = reinterpret_cast<errorSAXFunc>(reinterpret_cast<void (*)()>(&quiet));  // variadic, undeclared
  h.startElementNs = reinterpret_cast<startElementNsSAX2Func>(reinterpret_cast<void (*)()>(&on_start));  // undeclared
  xmlSAXHandler copy;
  ward::detail::extension_copy(h, reinterpret_cast<unsigned char*>(&copy));
  EXPECT_EQ(copy.initialized, 0x1234u);
  EXPECT_EQ(copy._private, nullptr);
  EXPECT_EQ(copy.error, nullptr);
  EXPECT_EQ(copy.startElementNs, nullptr);
  EXPECT_EQ(copy.comment, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(copy.startDocument), 1u) << "set: the child puts its stub here";
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(copy.characters), 1u);
}

TEST_F(Libxml2Sax, SameEventsAsInProcess) {
  for (const auto& [name, doc] : generated_documents()) {
    const Parsed want = direct(doc);
    ASSERT_GT(want.events.size(), 2u) << name;
    expect_same(want, sandboxed(*lib, doc), name);
  }
}

// Real documents from the machine (those present: iso-codes, xml-core, polkit, dbus and
// fontconfig ship XML; a minimal system may have none of them, the generated documents above
// cover every handler either way).
TEST_F(Libxml2Sax, SameEventsOnSystemDocuments) {
  const char* candidates[] = {"/usr/share/xml/iso-codes/iso_3166-1.xml", "/usr/share/xml/iso-codes/iso_639-2.xml",
                              "/usr/share/xml/iso-codes/iso_4217.xml",   "/usr/share/xml/schema/xml-core/catalog.xml",
                              "/usr/share/xml/polkit-1/catalog.xml",     "/usr/share/dbus-1/session.conf",
                              "/usr/share/dbus-1/system.conf",           "/etc/fonts/fonts.conf"};
  int compared = 0;
  for (const char* path : candidates) {
    auto doc = read_file(path);
    if (!doc || doc->empty()) continue;
    const Parsed want = direct(*doc);
    expect_same(want, sandboxed(*lib, *doc), path);
    ++compared;
  }
  std::printf("compared %d system documents event for event\n", compared);
}

TEST_F(Libxml2Sax, MalformedDocumentsGiveTheSameErrorAndEvents) {
  const char* bad[] = {"<a><b></a>", "<a", "<?xml version=\"1.0\"?><r>&undefined;</r>", "<a x='1' x='2'/>",
                       "<r>\x01\x02</r>", "not xml at all", "<r><!-- unterminated </r>", "<r/><second/>"};
  for (const char* doc : bad) {
    const Parsed want = direct(doc);
    EXPECT_NE(want.rc, 0) << doc;
    expect_same(want, sandboxed(*lib, doc), doc);
  }
  // No document at all: libxml2 refuses to make a parser (-1) without calling anything.
  expect_same(direct(""), sandboxed(*lib, ""), "empty");
}

// Only the fields the host set reach it; two fields of one signature (startDocument and
// endDocument) stay apart even when only one is set.
TEST_F(Libxml2Sax, OnlyTheFieldsTheHostSet) {
  xmlSAXHandler h;
  std::memset(&h, 0, sizeof h);
  h.endDocument = on_end_document;
  h.endElement = on_end;
  const std::string doc = "<a><b/>text<!-- c --></a>";
  const Parsed got = sandboxed(*lib, doc, h);
  EXPECT_EQ(got.events, (std::vector<std::string>{"end b", "end a", "endDocument"}));
  expect_same(direct(doc, h), got, "two fields");
}

// The host's own user data reaches its handlers, whatever token the extension saw; a second
// struct with the same user data is a registration of its own.
TEST_F(Libxml2Sax, HandlersGetTheHostsUserData) {
  Recorder a, b;
  xmlSAXHandler h1 = full_handlers(), h2;
  std::memset(&h2, 0, sizeof h2);
  h2.startElement = on_start;
  ASSERT_TRUE((*lib)->xmlSAXUserParseMemory(&h1, &a, "<x/>", 4));
  ASSERT_TRUE((*lib)->xmlSAXUserParseMemory(&h2, &a, "<y/>", 4));
  ASSERT_TRUE((*lib)->xmlSAXUserParseMemory(&h1, &b, "<z/>", 4));
  EXPECT_EQ(a.events, (std::vector<std::string>{"startDocument", "start x", "end x", "endDocument", "start y"}));
  EXPECT_EQ(b.events, (std::vector<std::string>{"startDocument", "start z", "end z", "endDocument"}));
}

// ---- a hostile library --------------------------------------------------------------------------
struct HostileSax : ::testing::Test {
  void SetUp() override {
    auto l = Lib::open(std::string(WARD_PLUGIN_DIR) + "/hostile/libsax_forge.so", policy());
    ASSERT_TRUE(l) << l.error().message();
    lib.emplace(std::move(*l));
  }
  // Parses `doc`; the call must fail with `kind` and the host's handlers never run.
  void refused(const std::string& doc, ward::Errc kind, const std::string& what) {
    Recorder r;
    xmlSAXHandler h = full_handlers();
    auto rc = (*lib)->xmlSAXUserParseMemory(&h, &r, doc.data(), static_cast<int>(doc.size()));
    ASSERT_FALSE(rc) << doc;
    EXPECT_EQ(rc.error().kind, kind) << rc.error().message();
    EXPECT_NE(rc.error().message().find(what), std::string::npos) << rc.error().message();
    EXPECT_TRUE(r.events.empty()) << r.events.front();
    EXPECT_FALSE(lib->domain().alive());
  }
  std::optional<Lib> lib;
};

TEST_F(HostileSax, HonestCallsWork) {
  Recorder r;
  xmlSAXHandler h = full_handlers();
  auto rc = (*lib)->xmlSAXUserParseMemory(&h, &r, "honest", 6);
  ASSERT_TRUE(rc) << rc.error().message();
  EXPECT_EQ(rc->unverified_value_i_trust_it(), 7);
  EXPECT_EQ(r.events, (std::vector<std::string>{"startDocument", "endDocument"}));
}

TEST_F(HostileSax, WhatTheExtensionsCopyHolds) {
  Recorder r;
  xmlSAXHandler h = full_handlers();
  h.comment = nullptr;
  h.initialized = 0x1234;
  h._private = &r;
  h.error = reinterpret_cast<errorSAXFunc>(reinterpret_cast<void (*)()>(&quiet));
  h.startElementNs = reinterpret_cast<startElementNsSAX2Func>(reinterpret_cast<void (*)()>(&on_start));
  auto rc = (*lib)->xmlSAXUserParseMemory(&h, nullptr, "layout", 6);
  ASSERT_TRUE(rc) << rc.error().message();
  EXPECT_EQ(rc->unverified_value_i_trust_it(), 0x7f);
}

TEST_F(HostileSax, ForgedUserDataIsAViolation) {
  refused("forge", ward::Errc::violation, "no callback token this domain issued");
}
TEST_F(HostileSax, NullUserDataIsAViolation) { refused("nullctx", ward::Errc::violation, "no callback token"); }
TEST_F(HostileSax, NullNameIsAViolation) { refused("nullname", ward::Errc::violation, "null string"); }
TEST_F(HostileSax, NegativeLengthIsAViolation) { refused("badlen", ward::Errc::violation, "xmlSAXHandler::characters"); }
// A text pointer into nothing: the stub reads it in the extension's own process, which crashes.
TEST_F(HostileSax, WildTextCrashesOnlyTheExtension) { refused("wildtext", ward::Errc::crashed, ""); }

// ---- recovery -----------------------------------------------------------------------------------
// The host kills the extension from inside a handler, in the middle of a parse; the parse is
// idempotent, so the Supervisor restarts the extension and parses again. The handlers see the
// killed attempt's events first (unless callbacks are suppressed across retries), then the
// whole document's: the events after the killed attempt's equal the direct parse's.
TEST(Libxml2SaxRecovery, AParseKilledInAHandlerIsRetried) {
  xmlSetGenericErrorFunc(nullptr, quiet);
  ward::Supervisor sup;
  auto ext = sup.open<libxml2_sax>("libxml2.so.2", policy());
  ASSERT_TRUE(ext) << ext.error().message();
  const std::string doc = generated_documents()[1].second;
  const Parsed want = direct(doc);
  for (const std::size_t kill_at : {std::size_t{1}, std::size_t{5}, want.events.size() - 1}) {
    Recorder r;
    bool killed = false;
    r.after_event = [&](Recorder& rec) {
      if (!killed && rec.events.size() == kill_at) {
        killed = true;
        (*ext)->kill();
      }
    };
    xmlSAXHandler h = full_handlers();
    const auto restarts = (*ext)->stats().restarts;
    auto rc = (**ext)->xmlSAXUserParseMemory(&h, &r, doc.data(), static_cast<int>(doc.size()));
    ASSERT_TRUE(rc) << rc.error().message();
    EXPECT_EQ(rc->unverified_value_i_trust_it(), want.rc);
    EXPECT_TRUE(killed);
    EXPECT_EQ((*ext)->stats().restarts, restarts + 1);
    ASSERT_GE(r.events.size(), want.events.size());
    const std::size_t before = r.events.size() - want.events.size();
    EXPECT_LE(before, kill_at) << "at most the killed attempt's events come first";
    for (std::size_t i = 0; i < before; ++i) EXPECT_EQ(r.events[i], want.events[i]) << "killed attempt, event " << i;
    for (std::size_t i = 0; i < want.events.size(); ++i)
      ASSERT_EQ(r.events[before + i], want.events[i]) << "retried parse, event " << i;
  }
}

}  // namespace
