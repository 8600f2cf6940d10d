// A T ** out-parameter to an incomplete type (sqlite3_open's) must be declared ward::out_opaque;
// declaring it as a buffer does not compile.
// expect: annotate it with ward::opaque(index), or ward::out_opaque(index) for a T **
#include "ward/iface/instance.h"
struct sqlite3;
struct api { int (*open)(const char* path, struct sqlite3** db); };
WARD_INTERFACE(api, (open, ward::cstring(0), ward::out(1)));
int main() {}
