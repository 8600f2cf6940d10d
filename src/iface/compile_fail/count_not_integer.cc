// The count of a buffer must be another integer parameter.
// expect: the count index of a buffer annotation must name another parameter of integer type
#include "ward/iface/instance.h"
struct api { long (*apply)(const unsigned char* in, double n); };
WARD_INTERFACE(api, (apply, ward::in(0, 1)));
int main() {}
