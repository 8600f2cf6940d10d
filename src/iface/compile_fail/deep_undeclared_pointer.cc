// A WARD_STRUCT that leaves a pointer member undeclared: the host would receive an extension
// address it cannot read. The error names its position and type.
// expect: undeclared_pointer_member<desc, 2, void*>
#include "ward/iface/instance.h"
struct desc { const char* name; int n; void* priv; };
WARD_STRUCT(desc, (name, ward::text));
int main() {}
