/* audit_dep_execstack.c - hostile probe plugin that is itself clean (non-executable stack) but
 * depends on libaudit_execstack.so, which asks for an executable stack: loading the dependency
 * makes the stack executable just the same. run(1) runs code on the stack through it.
 * (CMakeLists.txt links it against hostile_audit_execstack.) */
#include "probe_plugin.h"

long audit_run_on_stack(void);

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) { return arg != 0 ? audit_run_on_stack() : arg + 1; }

PROBE_PLUGIN(p_init, p_run)
