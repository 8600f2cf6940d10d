// libxml2's SAX interface (Debian's libxml2, unmodified) as a ward extension: the declarations the
// example and the tests share. Nothing here but the library's own header and annotations.
//
// Which handler fields cross (iface/handlers.h): every field whose arguments are strings, text
// (pointer + length), attribute arrays or integers. Left null in the extension's copy, so libxml2
// does what it does when a C host leaves them null:
//  - warning, error, fatalError: variadic (printf-style); libxml2 reports through its generic
//    error function instead, which writes to the extension's stderr (captured by ward);
//  - resolveEntity, getEntity, getParameterEntity: return libxml2 objects (the parser's own
//    defaults apply: predefined entities, no external entities);
//  - attributeDecl, elementDecl, setDocumentLocator: take libxml2 structures (an enumeration
//    tree, a content model, a locator of function pointers) that mean nothing to the host;
//  - startElementNs, endElementNs, serror: SAX2 fields; with `initialized` other than
//    XML_SAX2_MAGIC (or those fields null) libxml2 calls the SAX1 startElement/endElement;
//  - _private: a pointer data field (the host keeps its own state in the user data).
// libxml2 may pass NULL for any identifier it could not parse (a DOCTYPE without a name), so
// every such string is nullable; a NULL where none is declared would end the extension.
#pragma once

#include <libxml/parser.h>

#include "ward/ward.h"

WARD_HANDLERS(xmlSAXHandler,
              (internalSubset, ward::user_data(0), ward::cstring(1), ward::cstring(2), ward::cstring(3),
               ward::nullable(1), ward::nullable(2), ward::nullable(3)),
              (isStandalone, ward::user_data(0)),
              (hasInternalSubset, ward::user_data(0)),
              (hasExternalSubset, ward::user_data(0)),
              (entityDecl, ward::user_data(0), ward::cstring(1), ward::cstring(3), ward::cstring(4), ward::cstring(5),
               ward::nullable(1), ward::nullable(3), ward::nullable(4), ward::nullable(5)),
              (notationDecl, ward::user_data(0), ward::cstring(1), ward::cstring(2), ward::cstring(3), ward::nullable(1),
               ward::nullable(2), ward::nullable(3)),
              (unparsedEntityDecl, ward::user_data(0), ward::cstring(1), ward::cstring(2), ward::cstring(3),
               ward::cstring(4), ward::nullable(1), ward::nullable(2), ward::nullable(3), ward::nullable(4)),
              (startDocument, ward::user_data(0)),
              (endDocument, ward::user_data(0)),
              (startElement, ward::user_data(0), ward::cstring(1), ward::strings(2), ward::nullable(2)),
              (endElement, ward::user_data(0), ward::cstring(1)),
              (reference, ward::user_data(0), ward::cstring(1)),
              (characters, ward::user_data(0), ward::in(1, 2)),
              (ignorableWhitespace, ward::user_data(0), ward::in(1, 2)),
              (processingInstruction, ward::user_data(0), ward::cstring(1), ward::cstring(2), ward::nullable(2)),
              (comment, ward::user_data(0), ward::cstring(1)),
              (cdataBlock, ward::user_data(0), ward::in(1, 2)),
              (externalSubset, ward::user_data(0), ward::cstring(1), ward::cstring(2), ward::cstring(3),
               ward::nullable(1), ward::nullable(2), ward::nullable(3)),
              (initialized));

// The one-call parser: the handler struct and its user data, the document as a buffer. Safe to
// retry after a restart: it keeps no state between calls (the host's handlers may see the events
// of the failed attempt first; see the tests).
WARD_LIBRARY(libxml2_sax,
             (xmlSAXUserParseMemory, ward::handlers(0, 1), ward::in(2, 3), ward::idempotent));
