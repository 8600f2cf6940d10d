// An enum from a C header (no fixed underlying type) may only hold its enumerators' range;
// ward cannot see the enumerators, so the host must declare the range.
// expect: declare ward::enum_range<E> for an enum from a C header
#include "ward/iface/instance.h"
enum mode { OFF, ON };
struct api { long (*f)(mode m); };
WARD_INTERFACE(api, (f));
int main() {}
