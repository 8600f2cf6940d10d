/* freefns.c - see freefns.h. Written like any C library: nothing here knows about ward. */
#include "freefns.h"

#include <string.h>

int freefns_add(int a, int b) { return a + b; }

uint64_t freefns_sum(const unsigned char *data, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i < n; ++i) s += data[i];
  return s;
}

size_t freefns_fill(unsigned char *out, size_t n, unsigned char value) {
  memset(out, value, n);
  return n;
}

int freefns_crash(int how) {
  if (how == 1) *(volatile int *)0 = 1;
  return how;
}
