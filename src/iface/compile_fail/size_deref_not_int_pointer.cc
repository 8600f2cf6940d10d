// ward::deref(j) reads the integer parameter j points to: a pointer to a double is no count.
// expect: ward::deref(j) must name another parameter that points to one integer
#include "ward/iface/instance.h"
struct api { int (*get)(char* buf, double* len); };
WARD_INTERFACE(api, (get, ward::out(0, ward::deref(1)), ward::in(1)));
int main() {}
