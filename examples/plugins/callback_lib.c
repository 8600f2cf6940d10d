/* callback_lib.c - see include/callback_lib.h. */
#include "callback_lib.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static cb_start_fn g_start;
static void *g_start_ud;

static int exec_rows(int rows, cb_row_fn row, void *ud) {
  char *names[3] = {"id", "name", "note"};
  for (int i = 0; i < rows; ++i) {
    char id[16], name[24];
    snprintf(id, sizeof id, "%d", i);
    snprintf(name, sizeof name, "row%d", i);
    char *values[3] = {id, name, i % 2 ? NULL : "even"};
    if (row(ud, 3, values, names) != 0) return i + 1;
  }
  return rows;
}

static void set_handler(cb_start_fn start, void *ud) {
  g_start = start;
  g_start_ud = ud;
}

/* "name k=v k=v;name;..." */
static int parse(const char *doc) {
  if (!g_start) return -1;
  int elements = 0;
  char buf[256];
  while (*doc) {
    size_t len = strcspn(doc, ";");
    if (len >= sizeof buf) len = sizeof buf - 1;
    memcpy(buf, doc, len);
    buf[len] = 0;
    doc += len + (doc[len] == ';');
    const char *attrs[17];
    int n = 0;
    char *save = NULL;
    char *name = strtok_r(buf, " ", &save);
    for (char *kv = strtok_r(NULL, " ", &save); kv && n < 16; kv = strtok_r(NULL, " ", &save)) {
      char *eq = strchr(kv, '=');
      if (!eq) continue;
      *eq = 0;
      attrs[n++] = kv;
      attrs[n++] = eq + 1;
    }
    attrs[n] = NULL;
    g_start(g_start_ud, name ? name : "", attrs);
    ++elements;
  }
  return elements;
}

static int each(int n, cb_visit_fn visit, void *ud) {
  int i = 0;
  while (i < n)
    if (visit(ud, i++) != 0) break;
  return i;
}

static int sum(int n, cb_visit_fn visit, void *ud) {
  int s = 0;
  for (int i = 0; i < n; ++i) s += visit(ud, i);
  return s;
}

static int twice(int x) { return 2 * x; }

static uint64_t peek(cb_visit_fn visit, void *ud) {
  (void)visit;
  return (uint64_t)(uintptr_t)ud;
}

static int relay_argv(const cb_host *host) {
  const char *argv[] = {"alpha", NULL, "gamma"};
  return host->log_argv(3, argv);
}

static int total_len(const char **parts) {
  int n = 0;
  for (; *parts; ++parts) n += (int)strlen(*parts);
  return n;
}

static int total_len_n(int n, char **v) {
  int total = 0;
  for (int i = 0; i < n; ++i) total += v[i] ? (int)strlen(v[i]) : 100;
  return total;
}

static int forge(cb_visit_fn visit, void *ud, int how) {
  (void)ud;
  return visit(how == 0 ? (void *)(uintptr_t)0x4141414141414141ull : NULL, 7);
}

static int cross_token(cb_visit_fn visit, void *visit_ud, cb_row_fn row, void *row_ud) {
  (void)visit;
  (void)row_ud;
  char *names[1] = {"x"};
  char *values[1] = {"y"};
  return row(visit_ud, 1, values, names);
}

static int bad_rows(cb_row_fn row, void *ud, int how) {
  char *names[1] = {"x"};
  char *values[1] = {"y"};
  if (how == 0) return row(ud, 1, (char **)(uintptr_t)16, names);
  return row(ud, -1, values, names);
}

static int bad_attrs(int how) {
  if (!g_start) return -1;
  if (how == 1) {
    g_start(g_start_ud, "el", (const char **)(uintptr_t)24);
    return 0;
  }
  /* A page of non-NULL pointers followed by an unmapped page: whoever looks for the NULL faults. */
  const size_t page = 4096;
  unsigned char *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return -2;
  munmap(m + page, page);
  const char **attrs = (const char **)m;
  for (size_t i = 0; i < page / sizeof *attrs; ++i) attrs[i] = "x";
  g_start(g_start_ud, "el", attrs);
  return 0;
}

static const cb_api api = {exec_rows, set_handler, parse, each, sum, twice, peek, relay_argv, total_len,
                           total_len_n, forge, cross_token, bad_rows, bad_attrs};

const cb_api *callback_lib_entry(void) { return &api; }

int cb_exec(int rows, cb_row_fn row, void *ud) { return exec_rows(rows, row, ud); }
int cb_each(int n, cb_visit_fn visit, void *ud) { return each(n, visit, ud); }
