// A callback parameter whose type has no WARD_CALLBACK declaration must not compile.
// expect: this callback type was not declared
#include "ward/iface/instance.h"
typedef int (*visit_fn)(void* ud, int v);
struct api { int (*each)(int n, visit_fn visit, void* ud); };
WARD_INTERFACE(api, (each, ward::callback(1, 2)));
int main() {}
