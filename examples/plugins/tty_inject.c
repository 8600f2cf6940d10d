/* tty_inject.c - probe plugin whose run(arg != 0) pushes a character into the input of a
 * terminal (TIOCSTI) it opened itself: a pseudo-terminal pair, so that nothing real is typed into.
 * Returns 0 if the push worked, else -errno (of the first step that failed). The sandbox should
 * refuse the push even to a domain that may open files: the user's own terminal is a file too. */
#define _XOPEN_SOURCE 600
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const probe_host *g_host;

static int p_init(const probe_host *host) {
  g_host = host;
  return 0;
}

static long p_run(long arg) {
  if (arg == 0) return 1;
  int m = posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0) return -errno;
  long rc = 0;
  int t = -1;
  if (grantpt(m) != 0 || unlockpt(m) != 0) rc = -errno;
  if (rc == 0 && (t = open(ptsname(m), O_RDWR | O_NOCTTY)) < 0) rc = -errno;
  char c = 'x';
  if (rc == 0 && ioctl(t, TIOCSTI, &c) != 0) rc = -errno;
  if (t >= 0) close(t);
  close(m);
  return rc;
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  for (size_t i = 0; i < n; ++i) buf[i] = 0xAB;
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
