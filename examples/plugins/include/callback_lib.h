/* callback_lib.h - a plain C library that calls its caller back, the way sqlite3_exec, SAX
 * parsers and iterators do, for ward's callback tests (src/iface/callback_test.cc). It includes
 * no ward header. The hostile entries call the callbacks they are given with forged or broken
 * arguments. */
#ifndef WARD_EXAMPLE_CALLBACK_LIB_H
#define WARD_EXAMPLE_CALLBACK_LIB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A result row, like sqlite3_callback: ncols values (any may be NULL) and their column names. */
typedef int (*cb_row_fn)(void *ud, int ncols, char **values, char **names);
/* An element, like a SAX startElement: attrs is name, value, name, value, ..., NULL. */
typedef void (*cb_start_fn)(void *ud, const char *name, const char **attrs);
/* One value; a non-zero result stops the iteration (each) or is summed (sum). */
typedef int (*cb_visit_fn)(void *ud, int value);

typedef struct cb_host {
  int (*log_argv)(int argc, const char **argv); /* a host service taking a counted string array */
} cb_host;

typedef struct cb_api {
  /* Delivers `rows` rows of the columns "id", "name", "note": "<i>", "row<i>", and a NULL note in
   * odd rows. Stops when row() returns non-zero. Returns the rows delivered. */
  int (*exec)(int rows, cb_row_fn row, void *ud);
  /* Keeps the handler for parse(). */
  void (*set_handler)(cb_start_fn start, void *ud);
  /* Parses "name k=v k=v;name;...", calling the handler per element. Returns the elements, or -1
   * without a handler. */
  int (*parse)(const char *doc);
  /* visit(ud, i) for i = 0..n-1 until it returns non-zero. Returns the visits made. */
  int (*each)(int n, cb_visit_fn visit, void *ud);
  /* The sum of visit(ud, i) for i = 0..n-1. */
  int (*sum)(int n, cb_visit_fn visit, void *ud);
  int (*twice)(int x);
  /* The user data as the library sees it. */
  uint64_t (*peek)(cb_visit_fn visit, void *ud);
  /* host->log_argv(3, {"alpha", NULL, "gamma"}). */
  int (*relay_argv)(const cb_host *host);
  /* Strings the host passes in: the total length of parts (NULL-terminated), and of the n
   * strings of v (NULL ones count 100). */
  int (*total_len)(const char **parts);
  int (*total_len_n)(int n, char **v);

  /* Hostile. forge: visit(<how 0: 0x4141414141414141, 1: NULL>, 7). cross_token: row() with the
   * user data given to visit. bad_rows: row() with <0: values a wild pointer, 1: ncols -1>.
   * bad_attrs: the handler with <0: attrs without its NULL (runs into an unmapped page), 1: a
   * wild attrs pointer>. */
  int (*forge)(cb_visit_fn visit, void *ud, int how);
  int (*cross_token)(cb_visit_fn visit, void *visit_ud, cb_row_fn row, void *row_ud);
  int (*bad_rows)(cb_row_fn row, void *ud, int how);
  int (*bad_attrs)(int how);
} cb_api;

const cb_api *callback_lib_entry(void);

/* The same library as free functions, the way most C libraries export it. */
int cb_exec(int rows, cb_row_fn row, void *ud);
int cb_each(int n, cb_visit_fn visit, void *ud);

#ifdef __cplusplus
}
#endif

#endif
