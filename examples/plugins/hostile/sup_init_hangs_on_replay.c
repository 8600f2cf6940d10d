/* sup_init_hangs_on_replay.c - init does its job on the first load and spins for ever on every
 * later one (whenever the host's mode() is nonzero: the test flips it before killing the first
 * instance), so each restart attempt hangs in replay. Under the old supervisor this recovery
 * never gave up and held every caller for ever. work(ms) sleeps ms and returns ms. */
#include "sup_abi.h"
#include "sup_sleep.h"

static volatile int g_spin = 1; /* volatile: the loop is not assumed to terminate */

static int init(const sup_host *host) {
  if (host && host->mode && host->mode() != 0)
    while (g_spin) {
    }
  return 0;
}

static long ping(long x) { return x + 1; }

static long work(long ms) {
  if (ms > 0) sup_sleep_ms(ms);
  return ms;
}

static const sup_api api = {init, ping, work};

const sup_api *sup_entry(void) { return &api; }
