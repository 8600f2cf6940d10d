/* dom_futex_spam.c - finding 1 of the review: the plugin never answers, and meanwhile wakes
 * every futex word of the arena's control block (the host's reply doorbell among them) every
 * 2 ms. A host whose wait restarts its timeout on each wake-up never times the call out.
 * poke(buf, n): buf lies in the arena, which is how the plugin finds it. */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "hostile_arena.h"
#include "probe.h"

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) { return arg + 1; }

static long p_poke(unsigned char *buf, size_t n) {
  (void)n;
  unsigned char *arena = hostile_find_arena(buf);
  if (!arena) return -1;
  const struct timespec two_ms = {0, 2000000};
  for (;;) {
    for (unsigned off = 0; off < 4096; off += 4) syscall(SYS_futex, arena + off, FUTEX_WAKE, 1 << 30, 0, 0, 0);
    nanosleep(&two_ms, 0);
  }
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};
const probe_api *probe_entry(void) { return &api; }
