/* audit_dep_execstack.c - hostile probe plugin that is itself clean (non-executable stack) but
 * depends on libaudit_execstack.so, which asks for an executable stack: loading the dependency
 * makes the stack executable just the same. run(1) runs code on the stack through it.
 * (CMakeLists.txt links it against hostile_audit_execstack.) */
#include "probe.h"

long audit_run_on_stack(void);

static const probe_host *g_host;

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) { return arg != 0 ? audit_run_on_stack() : arg + 1; }

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  for (size_t i = 0; i < n; ++i) buf[i] = 0xAB;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
