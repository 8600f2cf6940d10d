/* out_fsize.c - hostile probe plugin for a host that allowed file access: run(1) writes 1 MiB
 * to /tmp/ward-fsize-<host pid> (the host is its parent). Without RLIMIT_FSIZE nothing stopped a
 * plugin from filling the disk. Returns the bytes written, or -errno. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long arg) {
  if (arg == 0) return 1;
  char path[64];
  snprintf(path, sizeof path, "/tmp/ward-fsize-%d", (int)getppid());
  /* /tmp is shared: create exclusively and never through a link another user planted. */
  const int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  static char block[64 * 1024];
  memset(block, 'f', sizeof block);
  long done = 0;
  while (done < (1L << 20)) {
    const ssize_t n = write(fd, block, sizeof block);
    if (n < 0) {
      done = -errno;
      break;
    }
    done += n;
  }
  close(fd);
  return done;
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  memset(buf, 0xAB, n);
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
