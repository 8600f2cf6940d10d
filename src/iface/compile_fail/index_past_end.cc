// An annotation naming a parameter that does not exist.
// expect: an annotation names a parameter index past the end
#include "ward/iface/instance.h"
struct api { long (*f)(int a); };
WARD_INTERFACE(api, (f, ward::in(3)));
int main() {}
