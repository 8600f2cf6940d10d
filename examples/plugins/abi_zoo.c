/* abi_zoo.c - see abi_zoo.h. Plain C, no ward headers. */
#include "abi_zoo.h"

#include <string.h>

static vec2 add_vec(vec2 a, vec2 b) { vec2 r = {a.x + b.x, a.y + b.y}; return r; }
static pair mix(pair p, int8_t k) { pair r = {p.a + k, p.b * (float)k}; return r; }
static dpair dmix(dpair p, double f) { dpair r = {p.x * f, p.n + 1}; return r; }
static big_rec scale_big(big_rec r, double f) {
  r.d.x *= f;
  r.w *= f;
  r.in.s = (int16_t)-r.in.s;
  r.tag += 1;
  return r;
}
static uint8_t neg_u8(int8_t x) { return (uint8_t)(-x); }
static int16_t half(int16_t x) { return (int16_t)(x / 2); }
static bool is_even(int64_t x) { return (x % 2) == 0; }
static color next_color(color c) { return c == RED ? GREEN : c == GREEN ? BLUE : RED; }
static double many(int8_t a, uint16_t b, int32_t c, int64_t d, uint64_t e, int32_t f, int32_t g, int32_t h,
                   double x, float y, double z, int32_t i) {
  return (double)a + b + c + (double)d + (double)e + f + g + h + x + y + z + i;
}
static const char *name_of(int32_t i) {
  static const char *const names[] = {"zero", "one", "two"};
  return (i >= 0 && i < 3) ? names[i] : NULL;
}

static long use_host(const zoo_host *h) {
  long bits = 0;
  vec2 m = h->mirror((vec2){1.5f, -2.0f});
  if (m.x == -2.0f && m.y == 1.5f) bits |= 1;
  uint8_t buf[16];
  memset(buf, 0, sizeof buf);
  if (h->fill(buf, sizeof buf) == 16 && buf[3] == (3 ^ 0x5a) && buf[15] == (15 ^ 0x5a)) bits |= 2;
  double xs[4] = {1, 2, 3, 6};
  if (h->avg(xs, 4) == 3.0) bits |= 4;
  char who[8] = "zoo";  /* on the plugin's stack: outside the arena, copied by the stub */
  const char *g = h->greet(who);
  if (g && strcmp(g, "hello, zoo") == 0) bits |= 8;
  big_rec r = {{1.25, 7}, {-3, 9}, 0.5, 100};
  big_rec t = h->twice(r);
  if (t.d.x == 2.5 && t.d.n == 14 && t.in.s == -6 && t.in.c == 18 && t.w == 1.0 && t.tag == 200) bits |= 16;
  return bits;
}

static uint64_t take_handle(uint64_t h) { return h + 1; }
static uint64_t take_plain(uint64_t v) { return v + 1; }

static const zoo_api api = {add_vec,    mix,     dmix,     scale_big,   neg_u8,     half,      is_even,
                            next_color, many,    name_of,  use_host,    take_handle, take_plain};

const zoo_api *zoo_entry(void) { return &api; }
