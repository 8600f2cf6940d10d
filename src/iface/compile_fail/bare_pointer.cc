// A pointer parameter without a declared direction and size must not compile.
// expect: a pointer parameter needs a declared direction and size
#include "ward/iface/instance.h"
struct api { long (*apply)(const unsigned char* in, unsigned long n); };
WARD_INTERFACE(api, (apply));
int main() {}
