// Returning a pointer to an incomplete type without ward::returns_opaque must not compile.
// expect: returns an opaque pointer: add ward::returns_opaque
#include "ward/iface/instance.h"
struct sqlite3;
struct api { struct sqlite3* (*open)(const char* path); };
WARD_INTERFACE(api, (open, ward::cstring(0)));
int main() {}
