/* ctor_open.c - probe plugin that makes a forbidden syscall while being
 * loaded: a constructor opens /etc/hostname. Tests that the sandbox is in
 * force before (or while) the plugin's constructors run. */
#define _POSIX_C_SOURCE 200809L
#include "probe.h"

#include <fcntl.h>

static const probe_host *g_host;

/* Global (and volatile) so the open() result is kept observable. */
volatile int g_ctor_fd = -1;

__attribute__((constructor)) static void open_on_load(void) {
  g_ctor_fd = open("/etc/hostname", O_RDONLY);
}

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

const probe_api *probe_entry(void) { return &api; }
