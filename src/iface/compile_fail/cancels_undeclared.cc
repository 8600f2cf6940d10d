// A cancel rule that points at a member the interface does not declare.
// expect: names a function that is not declared in this interface
#include "ward/iface/instance.h"
struct api { long (*put)(unsigned k, int v); long (*del)(unsigned k); long (*other)(unsigned k); };
WARD_INTERFACE(api, (put, ward::replay_by_key(0)), (del, ward::cancels<&api::other>(0)));
int main() {}
