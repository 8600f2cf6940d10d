// A host service cannot return an opaque pointer (the host would have to mint a value for the
// extension); the declaration compiles, using it as a service table does not.
// expect: a host service cannot return a ward::returns_opaque pointer
#include "ward/iface/instance.h"
struct thing;
struct host_api { thing* (*make)(void); };
struct api { int (*init)(const host_api* h); };
WARD_INTERFACE(host_api, (make, ward::returns_opaque));
WARD_INTERFACE(api, (init, ward::services(0)));
int main() { auto r = ward::Instance<api>::load("x", "y"); (void)r; }
