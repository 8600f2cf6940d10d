// ward::field<&S::len>(j) reads a member of the S parameter j is or points to: not another struct.
// expect: ward::field<&S::member>(j) must name another parameter that is an S by value or points to an S
#include <cstdint>
#include "ward/iface/instance.h"
struct hdr { std::uint32_t len; };
struct other { std::uint32_t len; };
struct api { int (*send)(const other* h, const unsigned char* body); };
WARD_INTERFACE(api, (send, ward::in(0), ward::in(1, ward::field<&hdr::len>(0))));
int main() {}
