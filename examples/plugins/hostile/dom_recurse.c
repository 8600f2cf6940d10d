/* dom_recurse.c - findings 11 and 12 of the review, with the host's help: run(arg > 0) calls the
 * host's log service, and the test's log service calls run again on the same thread (unbounded
 * nesting) or from another thread while it waits (a deadlock). The plugin is ordinary; the
 * hostility is the recursion it drives. */
#include "probe.h"

static const probe_host *g_host;

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) {
  if (arg > 0 && g_host) g_host->log("again");
  return arg + 1;
}

static long p_poke(unsigned char *buf, size_t n) {
  (void)buf;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};
const probe_api *probe_entry(void) { return &api; }
