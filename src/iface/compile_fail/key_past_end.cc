// A replay_by_key that names a key parameter the function does not have.
// expect: names a key parameter that does not exist
#include "ward/iface/instance.h"
struct api { long (*put)(unsigned long long t, unsigned k); };
WARD_INTERFACE(api, (put, ward::replay_by_key(0, 2)));
int main() {}
