/* mem_grow.c - probe plugin whose memory grows on demand, for the memory growth rate tests:
 *   run(n > 0)  allocates n KiB, touches every page and keeps it (a leak);
 *   run(n < 0)  allocates -n KiB, touches every page and frees it (resident memory stays flat);
 *   run(0)      returns 1.
 * Returns the KiB it keeps in all. */
#include <stdlib.h>
#include <string.h>

#include "probe.h"

static void *volatile g_kept; /* the leaked blocks, linked: the memory escapes */
static long g_kept_kib;

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) {
  if (arg == 0) return 1;
  const size_t n = (size_t)(arg > 0 ? arg : -arg) * 1024;
  unsigned char *p = malloc(n);
  if (!p) return -1;
  memset(p, 1, n);
  if (arg < 0) {
    free(p);
    return g_kept_kib;
  }
  void *prev = g_kept;
  memcpy(p, &prev, sizeof prev);
  g_kept = p;
  g_kept_kib += arg;
  return g_kept_kib;
}

static long p_poke(unsigned char *buf, size_t n) {
  (void)buf;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
