/* cpu_burn.c - probe plugin that spends CPU on demand, for the limits tests:
 *   run(n > 0)  computes for about n microseconds' worth of work (a fixed loop, n * kPerUs
 *               iterations; no clock: reading the CPU clock is a system call the filter refuses)
 *               and returns a checksum, so the work cannot be optimised away;
 *   run(-1)     spins forever inside the call;
 *   run(-2)     starts a thread that spins forever and returns 0 (needs unsafe_allow_threads);
 *   run(0)      returns 1. */
#include <pthread.h>

#include "probe.h"

static volatile int g_spin = 1;
enum { kPerUs = 300 }; /* iterations of the loop below per microsecond, roughly, on a 2020s core */

static long burn(long n) {
  unsigned long x = (unsigned long)n;
  for (long i = 0; i < n * kPerUs; ++i) x = x * 6364136223846793005ul + 1442695040888963407ul;
  return (long)(x >> 1);
}

static void *spinner(void *arg) {
  (void)arg;
  while (g_spin) {
  }
  return 0;
}

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) {
  if (arg > 0) return burn(arg);
  if (arg == -1)
    while (g_spin) {
    }
  if (arg == -2) {
    pthread_t t;
    return pthread_create(&t, 0, spinner, 0) == 0 ? 0 : -1;
  }
  return 1;
}

static long p_poke(unsigned char *buf, size_t n) {
  (void)buf;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
