/* sup_answers_just_in_time.c - never fails, only dawdles: init sleeps mode() ms before it
 * answers, work(ms) sleeps ms. With mode() just under the call timeout, every replayed init
 * succeeds at the last moment, so a long replay log makes one recovery last log size x timeout
 * unless recovery itself has a budget. */
#include "sup_abi.h"
#include "sup_sleep.h"

static int init(const sup_host *host) {
  const long ms = host && host->mode ? host->mode() : 0;
  if (ms > 0) sup_sleep_ms(ms);
  return 0;
}

static long ping(long x) { return x + 1; }

static long work(long ms) {
  if (ms > 0) sup_sleep_ms(ms);
  return ms;
}

static const sup_api api = {init, ping, work};

const sup_api *sup_entry(void) { return &api; }
