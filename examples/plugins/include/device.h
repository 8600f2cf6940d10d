/* device.h - ABI of the example stateful block-device plugin. */
#ifndef WARD_EXAMPLE_DEVICE_H
#define WARD_EXAMPLE_DEVICE_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Keep the entry point visible even if the build uses -fvisibility=hidden. */
#if defined(__GNUC__)
#define DEVICE_EXPORT __attribute__((visibility("default")))
#else
#define DEVICE_EXPORT
#endif

typedef struct device_host {
  void (*log)(const char *msg);
  uint64_t (*now_ns)(void);
} device_host;

typedef struct device_config {
  uint32_t block_size;
  uint32_t blocks;
  double gain;
  uint8_t flags;
} device_config;

typedef struct device_stats {
  uint64_t reads, writes, bytes_read, bytes_written;
} device_stats;

typedef struct device_api {
  /* Resets all state (frees storage, clears config and stats); stores host. */
  int (*init)(const device_host *host);
  /* block_size 1..65536, blocks 1..4096, block_size*blocks <= 8 MiB.
   * Allocates zeroed storage (freeing any old one). Returns 0, -22 for an
   * invalid config, -12 if allocation fails. */
  int (*configure)(const device_config *cfg);
  /* n <= block_size. Returns n, -22 for bad args, -19 if not configured. */
  long (*write)(uint32_t block, const uint8_t *data, size_t n);
  /* Copies min(n, block_size) bytes; returns the count or a negative code. */
  long (*read)(uint32_t block, uint8_t *data, size_t n);
  /* Returns 0, or -22 if out is NULL. */
  int (*stats)(device_stats *out);
  /* Current config by value (all zeros before configure). */
  device_config (*get_config)(void);
  /* x * gain * y + k (gain is 1.0 before configure). */
  double (*scale)(double x, float y, int32_t k);
  /* sums[i] = cfgs[i].block_size + cfgs[i].blocks + first for
   * i < min(ncfgs, nsums); returns that count (-22 for NULL arrays). */
  int (*fill)(uint32_t first, const device_config *cfgs, size_t ncfgs,
              uint32_t *sums, size_t nsums);
  /* Returns 0; for null-call benchmarks. */
  long (*ping)(void);
  /* Calls host->log(msg) `times` times and host->now_ns() once; returns
   * times, or -22 if msg is NULL or times < 0. */
  long (*log_echo)(const char *msg, long times);
} device_api;

DEVICE_EXPORT const device_api *device_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* WARD_EXAMPLE_DEVICE_H */
