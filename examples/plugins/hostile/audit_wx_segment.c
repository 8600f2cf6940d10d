/* audit_wx_segment.c - hostile probe plugin with a loadable segment that is writable and
 * executable at once: the section below is declared "awx" (the trailing '#' comments out the
 * flags the compiler appends), so the linker puts it in an RWX PT_LOAD that the loader maps
 * before the seccomp filter exists. run(1) writes machine code there and calls it. */
// ward-link-options: -Wl,--no-warn-rwx-segments
#include <string.h>

#include "probe.h"

static const probe_host *g_host;

__attribute__((section(".ward_wx,\"awx\",@progbits#"), used)) unsigned char g_wx[64];

/* x86-64: mov eax, 42; ret */
static const unsigned char k_code[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) {
  if (arg == 0) return arg + 1;
#if defined(__x86_64__)
  memcpy(g_wx, k_code, sizeof k_code);
  /* Keep the copy: nothing in C reads it, the call through the pointer does. */
  __asm__ volatile("" : : "r"(g_wx) : "memory");
  long (*volatile fn)(void) = (long (*)(void))(void *)g_wx;
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
