/* out_session.c - hostile probe plugin for a host that allowed file access: when the child
 * shared the host's session, open("/dev/tty") gave it the host's controlling terminal, to read
 * what the user types or push keystrokes into it (TIOCSTI), whatever its stdio had become.
 *   run(1): the child's session id (the test allows getsid for this);
 *   run(2): open("/dev/tty") and read from it: bytes read, or -errno. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) {
  if (arg == 1) return (long)getsid(0);
  if (arg == 2) {
    const int fd = open("/dev/tty", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -errno;
    char buf[64];
    const ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n < 0 ? -errno : (long)n;
  }
  return 1;
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  memset(buf, 0xAB, n);
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
