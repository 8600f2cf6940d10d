/* counter.c - the consumer's plugin: keeps a counter, and can crash on request. */
#include "counter.h"

static long count;

long counter_bump(long by) { return count += by; }

long counter_crash(long how) {
  volatile long *nowhere = (volatile long *)0;
  *nowhere = how;
  return how;
}
