// A union ward cannot look into: the bool in it could arrive with any byte.
// expect: ward::all_bit_patterns_valid<T> for a union
#include "ward/iface/instance.h"
union u { bool flag; int n; };
struct api { long (*read)(u* out, unsigned long n); };
WARD_INTERFACE(api, (read, ward::out(0, 1)));
int main() {}
