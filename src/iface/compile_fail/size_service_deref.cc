// The extension's side computes the sizes of host-service buffers itself: only parameters and
// constants, no ward::deref / ward::field / .filled().
// expect: a buffer of a host service or callback (called by the extension) can only be sized by
#include <cstddef>
#include "ward/iface/instance.h"
struct host { void (*read)(char* buf, std::size_t* len); };
struct api { void (*run)(const host* h); };
WARD_INTERFACE(host, (read, ward::out(0, ward::deref(1)).filled(ward::deref(1)), ward::inout(1)));
WARD_INTERFACE(api, (run, ward::services(0)));
int main() { (void)ward::Instance<api>::load("x", "y"); }
