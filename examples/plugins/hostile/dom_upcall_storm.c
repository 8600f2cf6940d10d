/* dom_upcall_storm.c - finding 2 of the review: the plugin calls a cheap host service in a tight
 * loop, so its reply-less call keeps handing the host an upcall inside the host's spin window;
 * with n == 2 it also writes a fake CPU number into its own doorbell after every service, so the
 * host keeps spinning instead of sleeping. A host that charges none of that spinning to the
 * extension lets the call run far past its timeout.
 * poke(buf, n): n selects the variant; buf locates the arena. */
#include "hostile_arena.h"
#include "probe.h"

static const probe_host *g_host;

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) { return arg + 1; }

static long p_poke(unsigned char *buf, size_t n) {
  unsigned char *arena = hostile_find_arena(buf);
  if (!arena || !g_host) return -1;
  volatile int32_t *cpu = (volatile int32_t *)(arena + HOSTILE_TO_CHILD + HOSTILE_DOORBELL_CPU);
  for (int32_t fake = 1000;; ++fake) {
    g_host->log("x");
    if (n == 2) *cpu = fake;
  }
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};
const probe_api *probe_entry(void) { return &api; }
