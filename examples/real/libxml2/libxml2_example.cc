// ward-example-libxml2: counts the elements, attributes, text and comments of an XML file with
// libxml2's SAX parser (Debian's libxml2.so.2, unmodified) running in a sandbox. The host fills
// an ordinary xmlSAXHandler with its own functions and passes its own user data, exactly as it
// would call libxml2 directly; ward hands the library a copy whose functions cross back here.
//
//   ward-example-libxml2 FILE
// Exit codes: 0 parsed, 1 the document is not well-formed (libxml2's error code is printed),
// 2 usage or the file cannot be read, 3 the sandbox failed (load error, crash, violation).
#include <libxml/parser.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "libxml2/sax.h"
#include "ward/ward.h"

namespace {

struct Counts {
  long elements = 0, attributes = 0, text_bytes = 0, comments = 0, max_depth = 0, depth = 0;
};

Counts& counts(void* ctx) { return *static_cast<Counts*>(ctx); }

void on_start(void* ctx, const xmlChar*, const xmlChar** atts) {
  Counts& c = counts(ctx);
  ++c.elements;
  for (int i = 0; atts && atts[i]; i += 2) ++c.attributes;
  if (++c.depth > c.max_depth) c.max_depth = c.depth;
}
void on_end(void* ctx, const xmlChar*) { --counts(ctx).depth; }
void on_text(void* ctx, const xmlChar*, int len) { counts(ctx).text_bytes += len; }
void on_comment(void* ctx, const xmlChar*) { ++counts(ctx).comments; }

void usage(std::FILE* to) {
  std::fprintf(to,
               "usage: ward-example-libxml2 FILE\n"
               "Counts the elements, attributes, text bytes and comments of an XML file with libxml2's\n"
               "SAX parser running in a ward sandbox (the handlers run in this process).\n"
               "Exit codes: 0 parsed, 1 not well-formed, 2 usage or unreadable file, 3 sandbox failure.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc != 2) {
    usage(stderr);
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::ostringstream data;
  if (!in || !(data << in.rdbuf())) {
    std::fprintf(stderr, "ward-example-libxml2: cannot read %s\n", argv[1]);
    return 2;
  }
  const std::string doc = data.str();
  if (doc.size() > (1u << 30)) {
    std::fprintf(stderr, "ward-example-libxml2: %s is larger than 1 GiB\n", argv[1]);
    return 2;
  }

  // The document crosses in the call's frame: room for it and for the handlers' arguments.
  auto policy = ward::Policy::builder().arena_size(doc.size() + (4u << 20)).build();
  if (!policy) {
    std::fprintf(stderr, "ward-example-libxml2: %s\n", policy.error().message().c_str());
    return 3;
  }
  auto lib = ward::Instance<libxml2_sax>::open("libxml2.so.2", *policy);
  if (!lib) {
    std::fprintf(stderr, "ward-example-libxml2: %s\n", lib.error().message().c_str());
    return 3;
  }

  xmlSAXHandler sax;
  std::memset(&sax, 0, sizeof sax);
  sax.startElement = on_start;
  sax.endElement = on_end;
  sax.characters = on_text;
  sax.cdataBlock = on_text;
  sax.comment = on_comment;
  Counts c;
  auto rc = (*lib)->xmlSAXUserParseMemory(&sax, &c, doc.data(), static_cast<int>(doc.size()));
  if (!rc) {
    std::fprintf(stderr, "ward-example-libxml2: %s\n", rc.error().message().c_str());
    return 3;
  }
  // libxml2's result: 0, or its error number (any int is a possible answer, nothing to check).
  const int code = rc->unverified_value_i_trust_it();
  std::printf("%s: %ld elements, %ld attributes, %ld text bytes, %ld comments, depth %ld\n", argv[1], c.elements,
              c.attributes, c.text_bytes, c.comments, c.max_depth);
  if (code != 0) {
    std::fprintf(stderr, "ward-example-libxml2: %s is not well-formed (libxml2 error %d)\n", argv[1], code);
    return 1;
  }
  return 0;
}
