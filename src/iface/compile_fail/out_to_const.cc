// An out buffer cannot point to const.
// expect: an out or inout parameter cannot point to const
#include "ward/iface/instance.h"
struct api { long (*read)(const unsigned char* out, unsigned long n); };
WARD_INTERFACE(api, (read, ward::out(0, 1)));
int main() {}
