/* sizes_lib.h - ABI of a test plugin whose buffers are sized the ways C sizes them: through a
 * pointer to a length (capacity in, length out), by a constant, by a product of parameters, by a
 * field of a struct argument, and by the return value (elements produced). A mode makes it lie
 * about what it filled, the way a hostile or broken library would. */
#ifndef WARD_EXAMPLE_SIZES_LIB_H
#define WARD_EXAMPLE_SIZES_LIB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SIZES_EXPORT __attribute__((visibility("default")))
#else
#define SIZES_EXPORT
#endif

enum {
  SL_HONEST = 0,
  SL_LEN_PAST_CAPACITY = 1,    /* get: *len = capacity + 1000 */
  SL_LEN_NEGATIVE = 2,         /* get_i: *len = -5 */
  SL_RESULT_PAST_CAPACITY = 3, /* produce: returns capacity + 1 */
  SL_RESULT_NEGATIVE = 4,      /* produce: returns -1 */
  SL_HOST_NEGATIVE_COUNT = 5,  /* call_host: passes npairs = -1 to the host */
};

/* A message header: `len` is the length of the body that goes with it. */
typedef struct sl_hdr {
  uint8_t version;
  uint32_t id;
  int16_t len;
  uint8_t tag;
} sl_hdr;

/* Host services the plugin calls (sizes the child computes: a parameter times a constant). */
typedef struct sl_host {
  void (*take_quad)(const uint32_t *quad);             /* 4 elements */
  void (*take_pairs)(const uint16_t *v, int npairs);   /* 2 * npairs elements */
  void (*give_triples)(uint8_t *out, uint32_t n);      /* 3 * n bytes, filled by the host */
} sl_host;

typedef struct sizes_api {
  void (*set_mode)(int mode);
  /* Copies "sizes: hello, world" into buf, at most *len bytes, and sets *len to the bytes
   * written. Scribbles '#' over the whole capacity first (scratch space). */
  int (*get)(char *buf, size_t *len);
  /* The same with a signed length. */
  int (*get_i)(char *buf, int32_t *len);
  /* block[i] = i * i, for 16 elements. */
  void (*fill_block)(uint32_t *block);
  /* An RGBA image of w x h pixels: px[k] = (uint8_t)(k * 7 + 1). */
  void (*paint)(uint8_t *px, int32_t w, int32_t h);
  /* Sum of a * b * c * d bytes. */
  uint64_t (*sum_box)(const uint8_t *v, size_t a, size_t b, size_t c, size_t d);
  /* Sum of the h->len bytes of body, plus h->id. */
  uint64_t (*sum_msg)(const sl_hdr *h, const uint8_t *body);
  /* The same with the header by value. */
  uint64_t (*sum_msg_val)(sl_hdr h, const uint8_t *body);
  /* Scribbles '#' over the capacity, writes min(cap, 10) bytes 'a', 'b', ... and returns how
   * many. */
  int64_t (*produce)(uint8_t *buf, size_t cap);
  /* Calls every host service once; returns the sum of the triples the host gave. */
  uint32_t (*call_host)(const sl_host *host);
} sizes_api;

SIZES_EXPORT const sizes_api *sizes_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* WARD_EXAMPLE_SIZES_LIB_H */
