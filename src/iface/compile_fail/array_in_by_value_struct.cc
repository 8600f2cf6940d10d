// A struct passed by value must be describable to the C ABI: no array members.
// expect: this struct cannot be passed by value
#include "ward/iface/instance.h"
struct rec { int a[2]; int b; };
struct api { long (*f)(rec r); };
WARD_INTERFACE(api, (f));
int main() {}
