// A variadic field of a handler struct (SAX's error(ctx, msg, ...)) cannot be declared.
// expect: a variadic callback
#include "ward/iface/instance.h"
struct events { void (*error)(void* ctx, const char* msg, ...); unsigned int initialized; };
WARD_HANDLERS(events, (error, ward::user_data(0), ward::cstring(1)));
int main() {}
