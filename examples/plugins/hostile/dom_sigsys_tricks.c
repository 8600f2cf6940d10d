/* dom_sigsys_tricks.c - finding 3 of the review: take over SIGSYS, the signal that reports a
 * forbidden system call, so that forbidden calls fail quietly with ENOSYS instead of ending the
 * plugin. The kernel reads the signal number as a 32-bit int; a filter that compares 64 bits
 * sees `SIGSYS | 1 << 32` as some other signal.
 * run(arg) selects the trick; it returns 42 if the forbidden openat afterwards came back. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "probe.h"

/* The kernel's struct sigaction for rt_sigaction (not glibc's). */
struct k_sigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)(void);
  uint64_t mask;
};

static void quiet(int sig) { (void)sig; }
extern void hostile_restorer(void) __asm__("hostile_restorer");
__asm__(".text\n.globl hostile_restorer\nhostile_restorer:\n mov $15, %rax\n syscall\n");

static long install(long sig, void (*handler)(int)) {
  struct k_sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.handler = handler;
  sa.flags = 0x04000000 /* SA_RESTORER */;
  sa.restorer = hostile_restorer;
  return syscall(SYS_rt_sigaction, sig, &sa, 0, 8);
}

static long forbidden(void) {
  const long fd = syscall(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY);
  return fd == -1 ? 42 : 43;
}

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) {
  switch (arg) {
    case 1: install((long)(SIGSYS | (1ull << 32)), quiet); return forbidden();          /* upper bits set */
    case 2: install((long)(SIGSYS | 0xffffffff00000000ull), quiet); return forbidden(); /* "negative" */
    case 3: install((long)(SIGSYS | (1ull << 32)), (void (*)(int))1 /* SIG_IGN */); return forbidden();
    case 4: { /* block it: a forced SIGSYS must still end the plugin */
      uint64_t set = 1ull << (SIGSYS - 1);
      syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, 0, 8);
      return forbidden();
    }
    case 5: install(SIGSYS, quiet); return forbidden(); /* the plain attempt */
    default: return arg + 1;
  }
}

static long p_poke(unsigned char *buf, size_t n) {
  (void)buf;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};
const probe_api *probe_entry(void) { return &api; }
