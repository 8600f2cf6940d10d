/* no_entry.c - probe plugin that exports its entry under the wrong name
 * (probe_entry_v2), so a host looking up probe_entry gets a missing-symbol
 * error. */
#include "probe.h"

static const probe_host *g_host;

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) { return arg + 1; }

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  for (size_t i = 0; i < n; ++i) buf[i] = 0xAB;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

PROBE_EXPORT const probe_api *probe_entry_v2(void);
const probe_api *probe_entry_v2(void) { return &api; }
