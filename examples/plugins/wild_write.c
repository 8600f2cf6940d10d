/* wild_write.c - probe plugin whose poke() writes outside its buffer:
 *  - always: 4096 bytes of 0xEE just past buf + n (likely still inside the
 *    shared arena, so it does not fault; the host should detect/contain it);
 *  - when n >= 2: one byte 16 GiB past buf, which should fault (SIGSEGV). */
#include "probe.h"

static const probe_host *g_host;

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) { return arg + 1; }

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  /* Volatile accesses: the out-of-bounds stores must really happen. */
  volatile unsigned char *vbuf = buf;
  for (size_t i = 0; i < n; ++i) vbuf[i] = 0xAB;
  for (size_t i = 0; i < 4096; ++i) vbuf[n + i] = 0xEE;
  if (n >= 2) vbuf[(size_t)1 << 34] = 1;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
