/* callback_crash.c - see include/callback_crash.h. */
#include "callback_crash.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static long long g_state;

/* Volatile, so the compiler can neither see the null nor turn the store into a trap. */
static volatile int *volatile g_null;

static void crash(void) { *g_null = 1; }

typedef struct stream {
  cc_job job;
  int run;
  long long prev, sum;
} stream;

/* Delivers row i with `text`; 1 if the stream goes on. */
static int deliver(stream *s, int i, const char *text, cc_row_fn row, void *ud) {
  if (s->run > 1 && i == s->job.garbage_at) ud = (void *)(uintptr_t)0x4141414141414141ull; /* a forged token */
  const int r = row(ud, i, text, 1000LL * i + s->prev);
  if (r < 0) {
    s->sum = r;
    return 0;
  }
  s->prev = r;
  s->sum += r;
  return 1;
}

static int rows_this_run(const stream *s) {
  if (s->run > 1 && s->job.shrink_to >= 0 && s->job.shrink_to < s->job.n) return s->job.shrink_to;
  return s->job.n;
}

static void maybe_crash(const stream *s, int delivered) {
  if (delivered == s->job.crash_after && s->run <= s->job.crash_runs) crash();
}

static long long emit(const char *seed, cc_job job, const cc_host *host, cc_row_fn row, void *ud) {
  stream s = {job, host->next_run(seed), 0, 0};
  const int n = rows_this_run(&s);
  for (int i = 0; i < n; ++i) {
    maybe_crash(&s, i);
    char text[96];
    if (job.vary_from >= 0 && i >= job.vary_from) snprintf(text, sizeof text, "%s:%d:r%d", seed, i, s.run);
    else snprintf(text, sizeof text, "%s:%d", seed, i);
    if (!deliver(&s, i, text, row, ud)) return s.sum;
  }
  maybe_crash(&s, n);
  return s.sum;
}

static long long emit_labelled(const char *seed, cc_job job, const cc_host *host, cc_label_fn label, void *label_ud,
                               cc_row_fn row, void *ud) {
  stream s = {job, host->next_run(seed), 0, 0};
  const int n = rows_this_run(&s);
  for (int i = 0; i < n; ++i) {
    maybe_crash(&s, i);
    char text[17] = {0};
    label(label_ud, i, text);
    if (!deliver(&s, i, text, row, ud)) return s.sum;
  }
  maybe_crash(&s, n);
  return s.sum;
}

static void init(const char *seed, int n, cc_row_fn row, void *ud) {
  g_state = 0;
  for (int i = 0; i < n; ++i) {
    char text[96];
    snprintf(text, sizeof text, "init:%s:%d", seed, i);
    g_state += row(ud, i, text, i);
  }
}

static long long state(void) { return g_state; }

static const cc_api api = {emit, emit_labelled, init, state};

const cc_api *callback_crash_entry(void) { return &api; }
