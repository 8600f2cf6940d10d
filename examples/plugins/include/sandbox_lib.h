/* sandbox_lib.h - ABI of a plugin that keeps pointers between calls, like the C libraries ward's
 * sandbox memory is for: buffers connected once and processed by every later call, and a stream
 * struct holding pointers and positions the library updates. */
#ifndef WARD_EXAMPLE_SANDBOX_LIB_H
#define WARD_EXAMPLE_SANDBOX_LIB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SANDBOX_LIB_PORTS 8

/* Like ZSTD_inBuffer / ZSTD_outBuffer in one: the library moves src_pos and dst_pos. */
typedef struct sb_stream {
  const float *src;
  size_t src_size;
  size_t src_pos;
  float *dst;
  size_t dst_size;
  size_t dst_pos;
} sb_stream;

typedef struct sandbox_lib_api {
  /* Keeps `buf` (n floats) as port `port` until it is connected again; -1 for a bad port. */
  int (*connect)(int port, float *buf, int n);
  /* For every connected port: buf[i] = buf[i] * 2 + 1 for i < min(n, its length). Returns the
   * number of ports processed. */
  int (*run)(int n);
  /* Moves up to `max` floats, negated, from src[src_pos..] to dst[dst_pos..]; returns how many. */
  long (*stream_step)(sb_stream *s, size_t max);
  /* The address the library holds for port `port` (0 if none). */
  uint64_t (*port_addr)(int port);
  /* The address the library was handed for `buf` (where an argument lands). */
  uint64_t (*seen)(const float *buf, int n);
  /* Writes v to each of the n floats of out. */
  void (*fill)(float *out, int n, float v);
  /* Hostile: writes 0xA5 over [from, from + len) of its own memory (the arena, say). */
  void (*scribble)(uint64_t from, uint64_t len);
} sandbox_lib_api;

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const sandbox_lib_api *sandbox_lib_entry(void);

#ifdef __cplusplus
}
#endif

#endif
