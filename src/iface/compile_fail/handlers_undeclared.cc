// A handler struct parameter whose struct has no WARD_HANDLERS declaration must not compile.
// expect: this struct of callbacks was not declared
#include "ward/iface/instance.h"
struct events { void (*start)(void* ctx); };
struct api { int (*parse)(events* h, void* ud); };
WARD_INTERFACE(api, (parse, ward::handlers(0, 1)));
int main() {}
