/* alloc_bomb.c - probe plugin whose run(arg != 0) allocates and touches
 * 64 MiB chunks until malloc fails, then writes through the NULL it got.
 * Tests memory limits: the child should hit its limit (and crash), not
 * the host. */
#include "probe.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_SIZE ((size_t)64 * 1024 * 1024)

static const probe_host *g_host;

/* Chunks are linked into a list whose head is a volatile global: the memory
 * escapes, so the compiler cannot elide the malloc/memset pairs. */
static void *volatile g_chunks;

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) {
  if (arg != 0) {
    for (;;) {
      unsigned char *p = malloc(CHUNK_SIZE);
      if (!p) {
        /* Launder the NULL through a volatile pointer (so the compiler cannot
         * turn it into a trap) to volatile memory (so the store is not dead):
         * a real SIGSEGV. */
        volatile unsigned char *volatile bad = p;
        *bad = 1;
        break;
      }
      memset(p, 1, CHUNK_SIZE); /* touch every page: commit real memory */
      void *prev = g_chunks;
      memcpy(p, &prev, sizeof prev); /* keep chunks (leaked) */
      g_chunks = p;
    }
  }
  return arg + 1;
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  for (size_t i = 0; i < n; ++i) buf[i] = 0xAB;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
