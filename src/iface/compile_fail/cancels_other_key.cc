// A cancel whose key does not have the types of the key it cancels (the bytes would never match).
// expect: needs as many key parameters as f's ward::replay_by_key, of the same types
#include "ward/iface/instance.h"
struct api { long (*put)(unsigned k, int v); long (*del)(unsigned long long k); };
WARD_INTERFACE(api, (put, ward::replay_by_key(0)), (del, ward::cancels<&api::put>(0)));
int main() {}
