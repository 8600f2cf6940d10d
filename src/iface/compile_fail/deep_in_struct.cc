// The host's copy of a described struct holds host pointers: passing it in is refused.
// expect: a pointer to a WARD_STRUCT type is either ward::out(index)
#include "ward/iface/instance.h"
struct desc { const char* name; };
WARD_STRUCT(desc, (name, ward::text));
struct api { int (*use)(const desc*); };
WARD_INTERFACE(api, (use, ward::in(0)));
int main() {}
