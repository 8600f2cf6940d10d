/* audit_closure_rwx.c - hostile probe plugin that overwrites the code behind a host service. The
 * helper builds a libffi closure for every host service before the sandbox exists, and libffi
 * places closures in memory that is writable and executable; the service table the plugin
 * receives points straight at them. run(1) writes its own machine code over host->log and calls
 * it. The closures must be executable but no longer writable by the time plugin code runs. */
#include "hostile_code.h"
#include "probe_plugin.h"

static const probe_host *g_host;

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) {
  if (arg == 0 || !g_host) return arg + 1;
  return hostile_run_code_at((void *)g_host->log);
}

PROBE_PLUGIN(p_init, p_run)
