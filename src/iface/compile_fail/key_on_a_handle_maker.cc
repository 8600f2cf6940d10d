// A call that hands out a handle cannot be replaced by key: the host may still hold the old one.
// expect: a call that hands out a handle, an opaque pointer or a descriptor cannot be replaced
#include "ward/iface/instance.h"
struct api { unsigned long long (*open)(const char* name); };
WARD_INTERFACE(api, (open, ward::cstring(0), ward::returns_ext_handle, ward::replay_by_key(0)));
int main() {}
