/* hostile_values.h - the C ABI of a hostile plugin that hands the host values with invalid bit
 * patterns: bools whose byte is neither 0 nor 1 and enums outside their enumerators, in every
 * place extension data becomes a host object (results by value, out and inout buffers, records
 * and buffers passed to host services, scalars). ward must normalise or reject each of them. */
#ifndef WARD_EXAMPLE_HOSTILE_VALUES_H
#define WARD_EXAMPLE_HOSTILE_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum hv_mode { HV_OFF = 0, HV_ON = 1, HV_AUTO = 2 } hv_mode;

typedef struct hv_rec {   /* small enough to travel by value */
  int32_t id;
  bool ok;
  hv_mode mode;
} hv_rec;

typedef struct hv_outer { /* buffers only: a nested record and an array of bools */
  hv_rec rec;
  bool bits[3];
  uint8_t tag;
  bool last;
} hv_outer;

typedef struct hv_host {
  void (*take)(hv_rec r);                          /* a record by value */
  void (*take_many)(const hv_outer *v, size_t n);  /* an in buffer of records */
  void (*update)(hv_outer *v);                     /* an inout record */
  void (*take_mode)(hv_mode m);                    /* an enum scalar */
  void (*take_flag)(bool b);                       /* a bool scalar */
  void (*take_flags)(const bool *v, size_t n);     /* an in buffer of bools */
} hv_host;

typedef struct hv_api {
  /* Every bool the plugin produces from now on has this byte; every enum this raw value. */
  void (*configure)(uint8_t bool_byte, int32_t mode_raw);
  hv_rec (*get)(void);
  int (*fill)(hv_outer *out, size_t n);
  int (*bump)(hv_outer *io);
  hv_mode (*get_mode)(void);
  bool (*get_flag)(void);
  int (*fill_flags)(bool *out, size_t n);
  /* Calls service `which` (0 take, 1 take_many, 2 update, 3 take_mode, 4 take_flag,
   * 5 take_flags). */
  int (*call_host)(const hv_host *h, int32_t which);
} hv_api;

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const hv_api *hv_entry(void);

#ifdef __cplusplus
}
#endif

#endif
