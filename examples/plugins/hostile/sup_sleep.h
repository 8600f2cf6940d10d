/* sup_sleep.h - the one helper the sup_*.c plugins share: sleep whole milliseconds, resuming
 * after interruptions, so a plugin's delay is what it claims. */
#ifndef WARD_HOSTILE_SUP_SLEEP_H
#define WARD_HOSTILE_SUP_SLEEP_H

#include <time.h>

static inline void sup_sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

#endif
