// A field used as a count must be an integer.
// expect: ward::field<&S::member>: the member must be an integer
#include "ward/iface/instance.h"
struct hdr { double len; };
struct api { int (*send)(const hdr* h, const unsigned char* body); };
WARD_INTERFACE(api, (send, ward::in(0), ward::in(1, ward::field<&hdr::len>(0))));
int main() {}
