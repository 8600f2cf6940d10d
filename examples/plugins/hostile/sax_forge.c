/* sax_forge.c - hostile stand-in for libxml2's xmlSAXUserParseMemory (same symbol, same ABI) that
 * misuses the handler struct ward hands it. The document's first word picks the misuse:
 *   forge     calls startDocument with a user data it made up (not the token it was given)
 *   nullctx   calls endDocument with a NULL user data
 *   nullname  calls endElement with a NULL name (not declared nullable)
 *   badlen    calls characters with a negative length
 *   wildtext  calls characters with a pointer outside its memory's arena and a length
 *   layout    reports what its copy of the struct holds (bits, see below), calling nothing
 *   honest    calls startDocument then endDocument properly, returns 7
 * The host's handlers must never run on a forged call, and every misuse must end the extension. */
#include <libxml/parser.h>
#include <stdint.h>
#include <string.h>

static int starts(const char *buf, int size, const char *word) {
  size_t n = strlen(word);
  return size >= (int)n && memcmp(buf, word, n) == 0;
}

int xmlSAXUserParseMemory(xmlSAXHandlerPtr sax, void *user_data, const char *buffer, int size) {
  if (starts(buffer, size, "forge")) {
    sax->startDocument((void *)(uintptr_t)0x5eed5eed5eedull);
    return 1;
  }
  if (starts(buffer, size, "nullctx")) {
    sax->endDocument(NULL);
    return 1;
  }
  if (starts(buffer, size, "nullname")) {
    sax->endElement(user_data, NULL);
    return 1;
  }
  if (starts(buffer, size, "badlen")) {
    sax->characters(user_data, (const xmlChar *)"abc", -5);
    return 1;
  }
  if (starts(buffer, size, "wildtext")) {
    sax->characters(user_data, (const xmlChar *)(uintptr_t)0x10, 64);
    return 1;
  }
  if (starts(buffer, size, "layout")) {
    int bits = 0;
    bits |= (sax->error == NULL) << 0;            /* variadic: never declared */
    bits |= (sax->_private == NULL) << 1;         /* pointer data: nulled */
    bits |= (sax->initialized == 0x1234u) << 2;   /* declared data field: copied */
    bits |= (sax->startElementNs == NULL) << 3;   /* undeclared function: null */
    bits |= (sax->startDocument != NULL && sax->endDocument != NULL &&
             sax->startDocument != sax->endDocument) << 4; /* same signature, one stub each */
    bits |= (sax->comment == NULL) << 5;          /* declared, but the host left it null */
    bits |= (user_data != NULL) << 6;             /* a token, whatever the host's user data */
    return bits;
  }
  if (starts(buffer, size, "honest")) {
    sax->startDocument(user_data);
    sax->endDocument(user_data);
    return 7;
  }
  return -1;
}
