// Calling a function the interface does not declare.
// expect: this function is not declared in the plugin's WARD_INTERFACE
#include "ward/iface/instance.h"
struct api { long (*f)(int a); long (*g)(int a); };
WARD_INTERFACE(api, (f));
int main() {
  auto p = ward::Instance<api>::load("x.so", "entry");
  if (p) (void)p->call<&api::g>(1);
}
