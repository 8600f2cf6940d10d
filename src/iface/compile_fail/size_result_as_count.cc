// The result is known only after the call: it cannot size what goes in.
// expect: ward::result counts what a call produced
#include "ward/iface/instance.h"
struct api { long (*produce)(char* buf); };
WARD_INTERFACE(api, (produce, ward::out(0, ward::result)));
int main() {}
