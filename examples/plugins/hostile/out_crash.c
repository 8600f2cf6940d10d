/* out_crash.c - probe plugin whose last words have no newline: run(1) writes "last words" to
 * stdout and "dying" to stderr, both unterminated, then crashes. Both must still reach the host. */
#include <string.h>
#include <unistd.h>

#include "probe.h"

static volatile int *volatile g_null_ptr = NULL;

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) {
  if (arg == 0) return 1;
  if (write(1, "last words", 10) != 10) return -1;
  if (write(2, "dying", 5) != 5) return -1;
  *g_null_ptr = 1;
  return 0;
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  memset(buf, 0xAB, n);
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
