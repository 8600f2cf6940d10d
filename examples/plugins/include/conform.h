/* conform.h - the plugin of ward's backend conformance suite (src/backend/conformance_suite.inc.cc).
 * Every function hands back what it was given, or relays it through the host's services, so the
 * host can check that each kind of value crosses a backend intact in both directions; the other
 * example plugins leave these kinds out: every scalar width as a parameter both ways, strings and
 * buffers that may be NULL, inout data into a host service, handles returned and handed to the
 * host. Plain C; it includes no ward header. */
#ifndef WARD_EXAMPLE_CONFORM_H
#define WARD_EXAMPLE_CONFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum shade { DIM = 1, BRIGHT = 2 } shade;

/* One of every scalar width, as they arrive in parameters: a record of mixed eightbytes. */
typedef struct scalars {
  int8_t i8;
  uint8_t u8;
  int16_t i16;
  uint16_t u16;
  int32_t i32;
  uint32_t u32;
  int64_t i64;
  uint64_t u64;
  float f32;
  double f64;
  bool flag;
  shade tone;
} scalars;

#define CONFORM_SCALAR_PARAMS                                                                   \
  int8_t i8, uint8_t u8, int16_t i16, uint16_t u16, int32_t i32, uint32_t u32, int64_t i64, \
      uint64_t u64, float f32, double f64, bool flag, shade tone

typedef struct conform_host {
  scalars (*pack)(CONFORM_SCALAR_PARAMS);       /* packs its parameters */
  const char *(*echo)(const char *s);           /* s may be NULL, and so may the result */
  long (*mangle)(uint8_t *buf, size_t n);       /* inout; buf may be NULL */
  long (*touch)(uint64_t object);               /* a handle to a host object */
} conform_host;

typedef struct conform_api {
  int (*init)(const conform_host *host);        /* stores host; returns 0 */
  scalars (*pack)(CONFORM_SCALAR_PARAMS);       /* packs its parameters */
  scalars (*relay_pack)(CONFORM_SCALAR_PARAMS); /* host->pack(the same parameters) */
  /* Strings come back as a copy of their first 255 bytes, kept until the next such call. */
  const char *(*echo)(const char *s);           /* a copy of s; NULL for NULL */
  const char *(*relay_echo)(const char *s);     /* a copy of host->echo(s); NULL for NULL */
  /* buf[i] = ~buf[i]; returns n, or -1 for a NULL buf. Then crashes (SIGSEGV) if crash != 0. */
  long (*mangle)(uint8_t *buf, size_t n, int crash);
  /* out[i] = i + 1; returns n, or -1 for a NULL out. Then crashes (SIGSEGV) if crash != 0. */
  long (*scribble)(uint8_t *out, size_t n, int crash);
  long (*relay_mangle)(uint8_t *buf, size_t n); /* host->mangle(buf, n) */
  uint64_t (*give_back)(uint64_t object);       /* returns object */
  uint64_t (*launder)(uint64_t value);          /* returns value */
  long (*relay_touch)(uint64_t value);          /* host->touch(value) */
} conform_api;

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const conform_api *conform_entry(void);

/* The same plugin as a library of free functions (bound by symbol), with the C shapes real
 * libraries use: an object of an incomplete type, a T ** out-parameter, a callback with user
 * data and counted string arrays, a size behind a pointer, memory kept between calls. */
typedef struct conform_obj conform_obj;
conform_obj *conform_obj_new(int v);           /* NULL for v < 0 */
int conform_obj_get(const conform_obj *o);
void conform_obj_free(conform_obj *o);
int conform_obj_open(int v, conform_obj **out); /* *out = conform_obj_new(v); returns 0 */
/* row(ud, 2, {"<i>", NULL in odd rows else "x"}) for i = 0..rows-1; returns the sum of results. */
typedef int (*conform_row_fn)(void *ud, int n, char **cells);
int conform_rows(int rows, conform_row_fn row, void *ud);
/* Copies "conformance" into buf, at most *len bytes; *len becomes the bytes copied. */
int conform_text(char *buf, size_t *len);
/* Keeps buf (n bytes) for conform_sum_kept, which sums its bytes now (-1 with nothing kept). */
void conform_keep(const uint8_t *buf, size_t n);
long conform_sum_kept(void);
/* The sum of buf's n bytes; but when buf[0] is 1, sets it to 0 and crashes first (once: the
 * next call, in a fresh instance with the same sandbox memory, sums). */
long conform_sum_once(uint8_t *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif
