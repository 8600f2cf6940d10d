// A pointer to an incomplete type (a library's own object) without ward::opaque must not compile.
// expect: can only cross as an opaque pointer: annotate it with ward::opaque(index)
#include "ward/iface/instance.h"
struct sqlite3;
struct api { int (*close)(struct sqlite3* db); };
WARD_INTERFACE(api, (close));
int main() {}
