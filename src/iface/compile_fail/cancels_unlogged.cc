// A cancel rule that points at a function the log does not hold by key.
// expect: names a function that is not logged by key
#include "ward/iface/instance.h"
struct api { long (*put)(unsigned k, int v); long (*del)(unsigned k); };
WARD_INTERFACE(api, (put, ward::replay_after_restart), (del, ward::cancels<&api::put>(0)));
int main() {}
