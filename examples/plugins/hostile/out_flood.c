/* out_flood.c - hostile probe plugin: run(n) writes n MiB of 128-byte lines to stdout as fast as
 * write(2) goes (64 MiB took ~30 ms straight into the host's stdout, with no cap and no
 * RLIMIT_FSIZE). Returns the number of bytes written, or -errno. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"

enum { kLine = 128, kChunk = 64 * 1024 };

static int p_init(const probe_host *host) {
  (void)host;
  return 0;
}

static long p_run(long mib) {
  if (mib <= 0) return 1;
  static char chunk[kChunk];
  for (size_t i = 0; i < sizeof chunk; ++i) chunk[i] = (i % kLine == kLine - 1) ? '\n' : 'x';
  const long total = mib << 20;
  long done = 0;
  while (done < total) {
    const ssize_t n = write(1, chunk + (done % kChunk), (size_t)(kChunk - done % kChunk));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    done += n;
  }
  return done;
}

static long p_poke(unsigned char *buf, size_t n) {
  if (!buf && n) return -1;
  memset(buf, 0xAB, n);
  return (long)n;
}

static const probe_api api = {.init = p_init, .run = p_run, .poke = p_poke};

const probe_api *probe_entry(void) { return &api; }
