/* fuzz_puppet.h - the C ABI between ward's fuzz host (fuzz/host_fuzz.cc) and the puppet plugin
 * (examples/plugins/hostile/fuzz_puppet.c). Every plugin function takes the fuzz input as an `in`
 * buffer and runs it as a script of hostile actions (see the op list below) before returning
 * whatever the script chose. The kinds are diverse on purpose: records by value (with a bool and
 * padding), strings both ways, in/out/inout buffers, handles, nested calls. */
#ifndef WARD_FUZZ_PUPPET_H
#define WARD_FUZZ_PUPPET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fz_rec {
  int32_t a;
  bool ok; /* one byte whose only valid values are 0 and 1 */
  uint8_t tag;
  uint16_t s;
  double d;
} fz_rec; /* 16 bytes */

typedef struct fz_pair {
  float x;
  int32_t n;
} fz_pair;

typedef struct fz_host {
  void (*log)(const char *msg);
  int64_t (*sum)(const uint8_t *data, size_t n);
  int32_t (*fill)(uint8_t *out, size_t n);
  int32_t (*twiddle)(fz_pair *io, int32_t n); /* signed count: negative is the plugin's lie */
  fz_rec (*echo)(fz_rec r, const fz_pair *p); /* p may be null */
  const char *(*name)(int32_t i);
  uint64_t (*grant)(uint32_t rights);
  int32_t (*use)(uint64_t h);
  int64_t (*again)(const uint8_t *script, size_t n); /* calls the plugin's nested() */
  int32_t (*denied)(void);                           /* never granted: calling it is a violation */
} fz_host;

typedef struct fz_api {
  int32_t (*init)(const fz_host *host);
  int64_t (*run)(const uint8_t *script, size_t n);
  fz_rec (*run_rec)(const uint8_t *script, size_t n);
  const char *(*run_str)(const uint8_t *script, size_t n);
  int64_t (*run_out)(const uint8_t *script, size_t n, uint8_t *out, size_t m);
  int64_t (*run_inout)(const uint8_t *script, size_t n, fz_pair *io, size_t m);
  bool (*run_bool)(const uint8_t *script, size_t n);
  uint64_t (*run_handle)(const uint8_t *script, size_t n);
  int64_t (*nested)(const uint8_t *script, size_t n);
} fz_api;

/* Script ops: one byte each, operands follow (little endian; reading past the end gives zeros).
 * "off" operands are arena offsets: below 2^31 relative to the script's own position, else
 * (minus 2^31) from the arena's start, control block included. */
enum fz_op {
  FZ_RET = 0,     /* u8 mode, 16 bytes: what the function returns (see fuzz_puppet.c) */
  FZ_POKE = 1,    /* u32 off, u8 len, bytes: write into the arena */
  FZ_CALL = 2,    /* u8 service, operands per service: call a host service through its stub */
  FZ_FORGE = 3,   /* u16 kind, u16 table, u32 fn, u32 frame off, u64 len, u32 top off, u64 a, u64 b:
                     write to_host's message, ring it, wait for the host's next message */
  FZ_FRAME = 4,   /* u32 off, u8 nslots, nslots x (u32 a off-or-raw selector, u64 b): write a frame */
  FZ_WAKE = 5,    /* u8 n: n % 8 spurious futex wake-ups on the host's doorbell */
  FZ_FAULT = 6,   /* u32 violation, i32 nr, u32 table, u32 fn, u64 alloc: write the fault record */
  FZ_EXIT = 7,    /* u8 status: exit_group */
  FZ_CRASH = 8,   /* write through a null pointer */
  FZ_SCRIBBLE = 9 /* u8 byte: fill the whole frame area above the script with it */
};

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const fz_api *fz_entry(void);

#ifdef __cplusplus
}
#endif

#endif
