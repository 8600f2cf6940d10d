/* audit_execstack.c - hostile probe plugin linked with an executable stack. The dynamic loader
 * makes the whole stack executable while mapping it, before the seccomp filter exists (which
 * would forbid PROT_EXEC afterwards); run(1) then writes machine code into a stack buffer and
 * jumps to it. ward must refuse to load it.
 *
 * It also serves as the executable-stack *dependency* of audit_dep_execstack.c, through
 * audit_run_on_stack(). */
// ward-link-options: -Wl,-z,execstack
#include "hostile_code.h"
#include "probe_plugin.h"

PROBE_EXPORT long audit_run_on_stack(void) {
  unsigned char code[16];
  return hostile_run_code_at(code);
}

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) { return arg != 0 ? audit_run_on_stack() : arg + 1; }

PROBE_PLUGIN(p_init, p_run)
