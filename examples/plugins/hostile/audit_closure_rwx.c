/* audit_closure_rwx.c - hostile probe plugin that overwrites the code behind a host service. The
 * helper builds a libffi closure for every host service before the sandbox exists, and libffi
 * places closures in memory that is writable and executable; the service table the plugin
 * receives points straight at them. run(1) writes its own machine code over host->log and calls
 * it. The closures must be executable but no longer writable by the time plugin code runs. */
#include <string.h>

#include "probe.h"

static const probe_host *g_host;

/* x86-64: mov eax, 42; ret */
static const unsigned char k_code[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) {
  if (arg == 0 || !g_host) return arg + 1;
#if defined(__x86_64__)
  unsigned char *code = (unsigned char *)(void *)g_host->log;
  memcpy(code, k_code, sizeof k_code);
  __asm__ volatile("" : : "r"(code) : "memory");
  long (*volatile fn)(void) = (long (*)(void))(void *)code;
  return fn();
#else
  return -1;
#endif
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  for (size_t i = 0; i < n; ++i) buf[i] = 0xAB;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
