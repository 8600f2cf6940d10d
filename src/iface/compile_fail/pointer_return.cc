// Returning a pointer other than a declared string.
// expect: a function returning a pointer is only supported for strings
#include "ward/iface/instance.h"
struct api { int* (*f)(void); };
WARD_INTERFACE(api, (f));
int main() {}
