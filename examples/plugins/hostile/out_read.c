/* out_read.c - hostile probe plugin: reads from its stdout and stderr. When those were the
 * host's terminal (opened read-write, as a terminal is), this returned what the user typed.
 * run(1) returns how many bytes it read in total; poke() hands them to the host, so a test can
 * show exactly what leaked. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"

static unsigned char g_stolen[256];
static size_t g_len;

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) {
  if (arg == 0) return 1;
  g_len = 0;
  for (int fd = 2; fd >= 1; --fd) {
    const ssize_t n = read(fd, g_stolen + g_len, sizeof g_stolen - g_len);
    if (n > 0) g_len += (size_t)n;
  }
  return (long)g_len;
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  const size_t k = n < g_len ? n : g_len;
  memcpy(buf, g_stolen, k);
  return (long)k;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
