// ward-test-host: a minimal host process for tests that need a domain owned by another process
// (another user, a separate address space). Loads a probe_api plugin, prints the child's pid on
// stdout, then keeps the domain alive until its stdin reaches end of file.
//
//   ward-test-host PLUGIN.so        exit 0 after stdin closes; 2 on a bad command line; 1 if
//                                   the plugin could not be loaded (the reason on stderr)
#include <unistd.h>

#include <cstdio>
#include <string>

#include "interfaces.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ward-test-host PLUGIN.so\n");
    return 2;
  }
  auto p = ward::Instance<probe_api>::load(argv[1], "probe_entry");
  if (!p) {
    std::fprintf(stderr, "ward-test-host: %s\n", p.error().message().c_str());
    return 1;
  }
  std::printf("%d\n", static_cast<int>(ward::pid_of(p->domain())));
  std::fflush(stdout);
  char c;
  while (read(0, &c, 1) > 0) {
  }
  return 0;
}
