/* crash_segv.c - probe plugin whose run(arg != 0) writes through NULL.
 * run(0) behaves, so the host can first prove the plugin works. */
#include "probe.h"

static const probe_host *g_host;

/* The pointer itself is volatile, so the compiler cannot see that it is
 * NULL and cannot replace the store with a trap (SIGILL) or delete it:
 * we want a genuine SIGSEGV. */
static volatile int *volatile g_null_ptr = NULL;

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) {
  if (arg != 0) *g_null_ptr = 42;
  return arg + 1;
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  for (size_t i = 0; i < n; ++i) buf[i] = 0xAB;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
