/* probe.h - ABI shared by the probe plugins (one well-behaved reference and
 * many deliberately misbehaving ones used to test the sandbox). */
#ifndef WARD_EXAMPLE_PROBE_H
#define WARD_EXAMPLE_PROBE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Keep the entry point visible even if the build uses -fvisibility=hidden. */
#if defined(__GNUC__)
#define PROBE_EXPORT __attribute__((visibility("default")))
#else
#define PROBE_EXPORT
#endif

typedef struct probe_host {
  void (*log)(const char *msg);
} probe_host;

typedef struct probe_api {
  int (*init)(const probe_host *host);
  /* The misbehaviour happens here unless noted; normally returns arg + 1. */
  long (*run)(long arg);
  /* Out buffer given by the host; well-behaved plugins fill it with 0xAB
   * and return n. */
  long (*poke)(unsigned char *buf, size_t n);
} probe_api;

PROBE_EXPORT const probe_api *probe_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* WARD_EXAMPLE_PROBE_H */
