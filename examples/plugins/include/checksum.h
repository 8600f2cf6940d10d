/* checksum.h - ABI of the example stateless checksum plugin. */
#ifndef WARD_EXAMPLE_CHECKSUM_H
#define WARD_EXAMPLE_CHECKSUM_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Keep the entry point visible even if the build uses -fvisibility=hidden. */
#if defined(__GNUC__)
#define CHECKSUM_EXPORT __attribute__((visibility("default")))
#else
#define CHECKSUM_EXPORT
#endif

typedef struct checksum_api {
  /* Standard CRC-32 (IEEE 802.3, reflected poly 0xEDB88320, init/xorout
   * 0xFFFFFFFF); crc32("123456789") == 0xCBF43926. */
  uint32_t (*crc32)(const uint8_t *data, size_t n);
  /* FNV-1a 64-bit. */
  uint64_t (*fnv1a64)(const uint8_t *data, size_t n);
  /* crc32 of each consecutive `block`-byte chunk (the last may be short);
   * writes at most nsums entries; returns the number written. */
  size_t (*block_sums)(const uint8_t *data, size_t n, uint32_t block,
                       uint32_t *sums, size_t nsums);
  /* out[i] = (uint8_t)(seed + i * 31) */
  void (*fill_pattern)(uint8_t *out, size_t n, uint8_t seed);
  /* buf[i] ^= key (in/out buffer) */
  void (*xor_inplace)(uint8_t *buf, size_t n, uint8_t key);
} checksum_api;

CHECKSUM_EXPORT const checksum_api *checksum_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* WARD_EXAMPLE_CHECKSUM_H */
