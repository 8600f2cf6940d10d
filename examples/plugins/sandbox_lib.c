/* sandbox_lib.c - a plugin that keeps the host's pointers between calls (sandbox_lib.h). */
#include "sandbox_lib.h"

#include <string.h>

static float *ports[SANDBOX_LIB_PORTS];
static int lens[SANDBOX_LIB_PORTS];

static int sb_connect(int port, float *buf, int n) {
  if (port < 0 || port >= SANDBOX_LIB_PORTS) return -1;
  ports[port] = buf;
  lens[port] = n;
  return 0;
}

static int sb_run(int n) {
  int done = 0;
  for (int p = 0; p < SANDBOX_LIB_PORTS; ++p) {
    if (!ports[p]) continue;
    const int m = n < lens[p] ? n : lens[p];
    for (int i = 0; i < m; ++i) ports[p][i] = ports[p][i] * 2 + 1;
    ++done;
  }
  return done;
}

static long sb_stream_step(sb_stream *s, size_t max) {
  long k = 0;
  while ((size_t)k < max && s->src_pos < s->src_size && s->dst_pos < s->dst_size) {
    s->dst[s->dst_pos++] = -s->src[s->src_pos++];
    ++k;
  }
  return k;
}

static uint64_t sb_port_addr(int port) {
  return port >= 0 && port < SANDBOX_LIB_PORTS ? (uint64_t)(uintptr_t)ports[port] : 0;
}

static uint64_t sb_seen(const float *buf, int n) {
  (void)n;
  return (uint64_t)(uintptr_t)buf;
}

static void sb_fill(float *out, int n, float v) {
  for (int i = 0; i < n; ++i) out[i] = v;
}

static void sb_scribble(uint64_t from, uint64_t len) { memset((void *)(uintptr_t)from, 0xA5, (size_t)len); }

static const sandbox_lib_api api = {sb_connect, sb_run, sb_stream_step, sb_port_addr, sb_seen, sb_fill, sb_scribble};

const sandbox_lib_api *sandbox_lib_entry(void) { return &api; }
