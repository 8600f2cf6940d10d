/* freefns.h - a small C library of free functions, as most libraries are: no entry symbol and
 * no table, just exported functions. ward loads it from this header's declarations alone. */
#ifndef WARD_EXAMPLE_FREEFNS_H
#define WARD_EXAMPLE_FREEFNS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int freefns_add(int a, int b);
/* Sum of n bytes. */
uint64_t freefns_sum(const unsigned char *data, size_t n);
/* Writes n bytes of `value` into out; returns n. */
size_t freefns_fill(unsigned char *out, size_t n, unsigned char value);
/* Crashes the library (for recovery tests). */
int freefns_crash(int how);
/* Declared here but not exported by the library: loading a declaration that names it fails. */
int freefns_missing(void);

#ifdef __cplusplus
}
#endif

#endif
