// .filled() says how much out data the extension produced: meaningless for in data.
// expect: .filled() is for out and inout buffers
#include <cstddef>
#include "ward/iface/instance.h"
struct api { long (*put)(const char* buf, std::size_t n); };
WARD_INTERFACE(api, (put, ward::in(0, 1).filled(ward::result)));
int main() {}
