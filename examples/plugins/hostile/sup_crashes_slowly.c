/* sup_crashes_slowly.c - dies on a fault, but only after a while, so that its failures are
 * spaced more than window / max_restarts apart: the old supervisor counted restarts in a sliding
 * window and never disabled such a plugin. init sleeps mode() ms and then crashes (when mode() is
 * nonzero: every replay, once the test flips it); work(ms) sleeps ms and then crashes. */
#include "sup_abi.h"
#include "sup_sleep.h"

static void crash_after(long ms) {
  sup_sleep_ms(ms);
  *(volatile int *)0 = 1;
}

static int init(const sup_host *host) {
  const long ms = host && host->mode ? host->mode() : 0;
  if (ms > 0) crash_after(ms);
  return 0;
}

static long ping(long x) { return x + 1; }

static long work(long ms) {
  crash_after(ms);
  return ms;
}

static const sup_api api = {init, ping, work};

const sup_api *sup_entry(void) { return &api; }
