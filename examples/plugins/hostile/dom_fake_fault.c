/* dom_fake_fault.c - finding 7 of the review: the child's fault record lives in shared memory the
 * plugin can write. It writes "violation: execve" (or "called an ungranted service") into it and
 * then simply exits: the host must report what it saw (an exit), not what the record claims.
 * poke(buf, n): n == 1: fake a syscall violation, exit 0; n == 2: the same, exit with the code
 * that once meant "violation" (121); n == 3: fake an ungranted service, exit 0; n == 4: fake the
 * record, then send itself SIGSYS (which must be refused as the violation it is). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "hostile_arena.h"
#include "probe.h"

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) { return arg + 1; }

static long p_poke(unsigned char *buf, size_t n) {
  unsigned char *arena = hostile_find_arena(buf);
  if (!arena) return -1;
  volatile uint32_t *violation = (volatile uint32_t *)(arena + HOSTILE_FAULT);
  volatile int32_t *nr = (volatile int32_t *)(arena + HOSTILE_FAULT + HOSTILE_FAULT_SYSCALL);
  volatile uint32_t *table = (volatile uint32_t *)(arena + HOSTILE_FAULT + HOSTILE_FAULT_TABLE);
  volatile uint32_t *fn = (volatile uint32_t *)(arena + HOSTILE_FAULT + HOSTILE_FAULT_FN);
  *nr = 59; /* execve */
  *table = 1;
  *fn = 0;
  *violation = n == 3 ? 2 : 1;
  if (n == 4) syscall(SYS_tgkill, getpid(), gettid(), SIGSYS);
  syscall(SYS_exit_group, n == 2 ? 121 : 0);
  return 0;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};
const probe_api *probe_entry(void) { return &api; }
