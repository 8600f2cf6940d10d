/* syscall_open.c - probe plugin whose run(arg != 0) opens /etc/passwd,
 * which the sandbox should forbid. Returns open()'s result. */
#define _POSIX_C_SOURCE 200809L
#include "probe.h"

#include <fcntl.h>

static const probe_host *g_host;

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) {
  if (arg != 0) return open("/etc/passwd", O_RDONLY);
  return arg + 1;
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  for (size_t i = 0; i < n; ++i) buf[i] = 0xAB;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
