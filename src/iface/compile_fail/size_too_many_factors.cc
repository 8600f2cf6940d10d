// A size has at most four variable factors.
// expect: ward_size_has_more_than_4_variable_factors
#include <cstddef>
#include "ward/iface/instance.h"
using S = std::size_t;
struct api { long (*sum)(const char* v, S a, S b, S c, S d, S e); };
WARD_INTERFACE(api, (sum, ward::in(0, ward::arg(1) * ward::arg(2) * ward::arg(3) * ward::arg(4) * ward::arg(5))));
int main() {}
