/* conform.c - see conform.h. Plain C, no ward headers. */
#include "conform.h"

#include <string.h>

static const conform_host *g_host;
/* volatile: the compiler must emit a real store through NULL (a genuine SIGSEGV). */
static volatile int *volatile g_null;

static int init(const conform_host *host) {
  g_host = host;
  return 0;
}

static scalars pack(CONFORM_SCALAR_PARAMS) {
  scalars s = {i8, u8, i16, u16, i32, u32, i64, u64, f32, f64, flag, tone};
  return s;
}

static scalars relay_pack(CONFORM_SCALAR_PARAMS) {
  return g_host->pack(i8, u8, i16, u16, i32, u32, i64, u64, f32, f64, flag, tone);
}

/* Results outlive the call that made them: keep a copy of the string being returned. */
static const char *keep(const char *s) {
  static char copy[256];
  if (!s) return NULL;
  strncpy(copy, s, sizeof copy - 1);
  copy[sizeof copy - 1] = '\0';
  return copy;
}

static const char *echo(const char *s) { return keep(s); }
static const char *relay_echo(const char *s) { return keep(g_host->echo(s)); }

static long mangle(uint8_t *buf, size_t n, int crash) {
  if (!buf) return -1;
  for (size_t i = 0; i < n; ++i) buf[i] = (uint8_t)~buf[i];
  if (crash) *g_null = 1;
  return (long)n;
}

static long scribble(uint8_t *out, size_t n, int crash) {
  if (!out) return -1;
  for (size_t i = 0; i < n; ++i) out[i] = (uint8_t)(i + 1);
  if (crash) *g_null = 1;
  return (long)n;
}

static long relay_mangle(uint8_t *buf, size_t n) { return g_host->mangle(buf, n); }
static uint64_t give_back(uint64_t object) { return object; }
static uint64_t launder(uint64_t value) { return value; }
static long relay_touch(uint64_t value) { return g_host->touch(value); }

static const conform_api api = {init,   pack,     relay_pack,   echo,      relay_echo, mangle,
                                scribble, relay_mangle, give_back, launder, relay_touch};

const conform_api *conform_entry(void) { return &api; }
