/* callback_crash.h - a plain C library that streams rows to a callback and crashes in the middle
 * of the stream, for ward's tests of callbacks across a retry (src/recovery/callback_retry_test.cc).
 * It includes no ward header.
 *
 * Every streaming call asks the host which run of it this is (a count the host keeps, so it
 * survives restarts) and crashes only in the runs the job says. What the rows say can depend on
 * the run too, to make a retry diverge. */
#ifndef WARD_EXAMPLE_CALLBACK_CRASH_H
#define WARD_EXAMPLE_CALLBACK_CRASH_H

#ifdef __cplusplus
extern "C" {
#endif

/* One row: its index, its text and a value the library computed from the previous row's result.
 * The result steers the library: a negative one stops the stream. */
typedef int (*cc_row_fn)(void *ud, int index, const char *text, long long value);
/* Fills `label` (16 bytes) for row `index`; the library uses it as that row's text. */
typedef void (*cc_label_fn)(void *ud, int index, char *label);

typedef struct cc_job {
  int n;           /* rows */
  int crash_after; /* crash (SIGSEGV) once this many rows were delivered ... */
  int crash_runs;  /* ... in runs 1..crash_runs (0: never crash) */
  int vary_from;   /* rows from this index on say which run made them (-1: never) */
  int shrink_to;   /* runs after the first stop after this many rows (-1: never) */
  int garbage_at;  /* runs after the first pass forged user data at this row (-1: never) */
} cc_job;

typedef struct cc_host {
  /* How many streaming calls with this seed have started, this one included. */
  int (*next_run)(const char *seed);
} cc_host;

typedef struct cc_api {
  /* Rows i = 0..n-1: text "<seed>:<i>" (":r<run>" appended from vary_from on), value
   * 1000 * i + the previous row's result. Returns the sum of the results, or the first negative
   * one (the stream stops there). */
  long long (*emit)(const char *seed, cc_job job, const cc_host *host, cc_row_fn row, void *ud);
  /* The same, with each row's text asked of label() first. */
  long long (*emit_labelled)(const char *seed, cc_job job, const cc_host *host, cc_label_fn label, void *label_ud,
                             cc_row_fn row, void *ud);
  /* Rows "init:<seed>:<i>" with value i; keeps the sum of their results for state(). */
  void (*init)(const char *seed, int n, cc_row_fn row, void *ud);
  long long (*state)(void);
} cc_api;

const cc_api *callback_crash_entry(void);

#ifdef __cplusplus
}
#endif

#endif
