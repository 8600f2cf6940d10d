// .filled(ward::result) reads the count produced from the result: it must be an integer.
// expect: .filled(ward::result) needs a function that returns an integer
#include <cstddef>
#include "ward/iface/instance.h"
struct api { void (*produce)(char* buf, std::size_t cap); };
WARD_INTERFACE(api, (produce, ward::out(0, 1).filled(ward::result)));
int main() {}
