// A key parameter must name state by value: a buffer's address says nothing.
// expect: a key parameter must be an integer, enum or bool by value
#include "ward/iface/instance.h"
struct api { long (*put)(const unsigned char* key, unsigned long n); };
WARD_INTERFACE(api, (put, ward::in(0, 1), ward::replay_by_key(0)));
int main() {}
