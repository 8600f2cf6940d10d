// A pointer data field of a handler struct would hand the extension a host address.
// expect: pointer fields stay null
#include "ward/iface/instance.h"
struct events { void (*start)(void* ctx); void* _private; };
WARD_HANDLERS(events, (start, ward::user_data(0)), (_private));
int main() {}
