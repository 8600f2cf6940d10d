/* audit_execstack.c - hostile probe plugin linked with an executable stack. The dynamic loader
 * makes the whole stack executable while mapping it, before the seccomp filter exists (which
 * would forbid PROT_EXEC afterwards); run(1) then writes machine code into a stack buffer and
 * jumps to it. ward must refuse to load it.
 *
 * It also serves as the executable-stack *dependency* of audit_dep_execstack.c, through
 * audit_run_on_stack(). */
// ward-link-options: -Wl,-z,execstack
#include <string.h>

#include "probe.h"

static const probe_host *g_host;

/* x86-64: mov eax, 42; ret */
static const unsigned char k_code[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};

PROBE_EXPORT long audit_run_on_stack(void) {
#if defined(__x86_64__)
  unsigned char code[sizeof k_code];
  memcpy(code, k_code, sizeof code);
  /* Keep the copy: nothing in C reads it, the call through the pointer does. */
  __asm__ volatile("" : : "r"(code) : "memory");
  long (*volatile fn)(void) = (long (*)(void))(void *)code;
  return fn();
#else
  return -1;
#endif
}

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) { return arg != 0 ? audit_run_on_stack() : arg + 1; }

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  for (size_t i = 0; i < n; ++i) buf[i] = 0xAB;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
