/* out_lseek.c - hostile probe plugin: rewinds its stdout and stderr and writes over whatever
 * they are. When the child's descriptors 1 and 2 were the host's own open files (a log file
 * redirected with `> host.log`), this overwrote the host's log from its first byte.
 * run(1) returns the number of descriptors it managed to rewind (0 when both are pipes). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) {
  if (arg == 0) return 1;
  static const char forged[] = "PLUGIN WAS HERE: the host's log starts with this now\n";
  long rewound = 0;
  for (int fd = 1; fd <= 2; ++fd) {
    if (lseek(fd, 0, SEEK_SET) == 0) ++rewound;
    if (write(fd, forged, sizeof forged - 1) < 0) return -errno;
  }
  return rewound;
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  memset(buf, 0xAB, n);
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
