/* abi_zoo.h - a plugin whose only job is to exercise the C calling convention: structs by
 * value of every register class, narrow integers, bool, enums, many arguments, strings back,
 * and host services taking and returning the same. Used by ward's interface tests. */
#ifndef WARD_EXAMPLE_ABI_ZOO_H
#define WARD_EXAMPLE_ABI_ZOO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vec2 { float x, y; } vec2;                 /* one SSE eightbyte */
typedef struct pair { int32_t a; float b; } pair;         /* mixed eightbyte: INTEGER */
typedef struct dpair { double x; int64_t n; } dpair;      /* SSE + INTEGER */
typedef struct inner { int16_t s; uint8_t c; } inner;
typedef struct big_rec { dpair d; inner in; double w; uint64_t tag; } big_rec; /* > 16 bytes: memory */
typedef enum color { RED = 1, GREEN = 2, BLUE = 3 } color;

typedef struct zoo_host {
  vec2 (*mirror)(vec2 v);                          /* returns {y, x} */
  int (*fill)(uint8_t *out, size_t n);             /* out[i] = i ^ 0x5a; returns n */
  double (*avg)(const double *xs, size_t n);
  const char *(*greet)(const char *who);           /* "hello, <who>" */
  big_rec (*twice)(big_rec r);                     /* every number doubled */
} zoo_host;

typedef struct zoo_api {
  vec2 (*add_vec)(vec2 a, vec2 b);
  pair (*mix)(pair p, int8_t k);                   /* {a + k, b * k} */
  dpair (*dmix)(dpair p, double f);                /* {x * f, n + 1} */
  big_rec (*scale_big)(big_rec r, double f);       /* d.x, w scaled; in.s negated; tag + 1 */
  uint8_t (*neg_u8)(int8_t x);                     /* (uint8_t)(-x) */
  int16_t (*half)(int16_t x);
  bool (*is_even)(int64_t x);
  color (*next_color)(color c);                    /* RED->GREEN->BLUE->RED */
  double (*many)(int8_t a, uint16_t b, int32_t c, int64_t d, uint64_t e, int32_t f, int32_t g,
                 int32_t h, double x, float y, double z, int32_t i); /* sum of all */
  const char *(*name_of)(int32_t i);               /* "zero".."two", NULL otherwise */
  long (*use_host)(const zoo_host *h);             /* calls every service, returns a bit per check passed */
  uint64_t (*take_handle)(uint64_t h);             /* returns h + 1; the host declares h a handle */
  uint64_t (*take_plain)(uint64_t v);              /* returns v + 1; the same, declared a plain integer */
} zoo_api;

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const zoo_api *zoo_entry(void);

#ifdef __cplusplus
}
#endif

#endif
