// A callback type without its user-data parameter must not compile: ward could not tell which
// registration a call through it is for.
// expect: a WARD_CALLBACK needs exactly one ward::user_data(k) parameter
#include "ward/iface/instance.h"
typedef int (*visit_fn)(void* ud, int v);
WARD_CALLBACK(visit_fn);
int main() {}
