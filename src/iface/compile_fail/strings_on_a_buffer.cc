// ward::strings on anything but char ** / const char ** must not compile.
// expect: annotation does not fit the pointer type
#include "ward/iface/instance.h"
struct api { int (*total)(const char* s); };
WARD_INTERFACE(api, (total, ward::strings(0)));
int main() {}
