// A capacity the extension may change (inout) must be declared as the filled count, so that its
// new value is checked against the capacity before the host keeps it.
// expect: or ward::inout(j) with .filled(ward::deref(j))
#include <cstddef>
#include "ward/iface/instance.h"
struct api { int (*get)(char* buf, std::size_t* len); };
WARD_INTERFACE(api, (get, ward::out(0, ward::deref(1)), ward::inout(1)));
int main() {}
