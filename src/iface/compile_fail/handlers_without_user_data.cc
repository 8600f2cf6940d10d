// Each handler field needs the parameter its user data (the registration's token) arrives in.
// expect: needs exactly one ward::user_data(k)
#include "ward/iface/instance.h"
struct events { void (*start)(int depth, int width); };
WARD_HANDLERS(events, (start));
int main() {}
