// A bool in a struct with bit-fields cannot be reached by address: ward cannot check it.
// expect: ward::all_bit_patterns_valid<T> for a union
#include "ward/iface/instance.h"
struct rec { unsigned kind : 3; bool flag : 4; int n; };
struct api { long (*read)(rec* out, unsigned long n); };
WARD_INTERFACE(api, (read, ward::out(0, 1)));
int main() {}
