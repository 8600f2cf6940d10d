/* conform.c - see conform.h. Plain C, no ward headers. */
#include "conform.h"

#include <stdlib.h>
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

/* ---- the library shape ---------------------------------------------------------------------- */
struct conform_obj {
  int v;
};

conform_obj *conform_obj_new(int v) {
  if (v < 0) return NULL;
  conform_obj *o = malloc(sizeof *o);
  if (o) o->v = v;
  return o;
}
int conform_obj_get(const conform_obj *o) { return o ? o->v : -1; }
void conform_obj_free(conform_obj *o) { free(o); }
int conform_obj_open(int v, conform_obj **out) {
  *out = conform_obj_new(v);
  return 0;
}

int conform_rows(int rows, conform_row_fn row, void *ud) {
  int sum = 0;
  for (int i = 0; i < rows; ++i) {
    char num[16];
    char x[] = "x";
    int k = 0, v = i;
    char tmp[16];
    do tmp[k++] = (char)('0' + v % 10); while ((v /= 10) > 0);
    for (int j = 0; j < k; ++j) num[j] = tmp[k - 1 - j];
    num[k] = '\0';
    char *cells[2] = {num, (i & 1) ? NULL : x};
    sum += row(ud, 2, cells);
  }
  return sum;
}

int conform_text(char *buf, size_t *len) {
  static const char text[] = "conformance";
  size_t n = *len < sizeof text - 1 ? *len : sizeof text - 1;
  memcpy(buf, text, n);
  *len = n;
  return 0;
}

static const uint8_t *g_kept;
static size_t g_kept_n;
void conform_keep(const uint8_t *buf, size_t n) {
  g_kept = buf;
  g_kept_n = n;
}
long conform_sum_kept(void) {
  if (!g_kept) return -1;
  long s = 0;
  for (size_t i = 0; i < g_kept_n; ++i) s += g_kept[i];
  return s;
}

long conform_sum_once(uint8_t *buf, size_t n) {
  if (n && buf[0] == 1) {
    buf[0] = 0;
    *g_null = 1;
  }
  long s = 0;
  for (size_t i = 0; i < n; ++i) s += buf[i];
  return s;
}
