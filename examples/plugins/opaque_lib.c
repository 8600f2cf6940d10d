/* opaque_lib.c - see opaque_lib.h. Plain C, no ward headers. */
#include "opaque_lib.h"

#include <string.h>

#define MAX_DB 8
#define MAX_CUR 8

struct olib_db {
  int used;
  long sum;
  char name[16];
};
struct cursor {
  olib_db *db;
  long pos;
};

static olib_db g_db[MAX_DB];
static struct cursor g_cur[MAX_CUR];
static long g_calls;

/* Addresses compared as integers: a wild pointer is never dereferenced. */
static int is_db(const olib_db *p) {
  const uintptr_t a = (uintptr_t)p, lo = (uintptr_t)&g_db[0], hi = (uintptr_t)&g_db[MAX_DB];
  return a >= lo && a < hi && (a - lo) % sizeof(olib_db) == 0 && ((const olib_db *)a)->used;
}

static olib_db *db_create(const char *name) {
  ++g_calls;
  if (!name[0]) return NULL;
  for (int i = 0; i < MAX_DB; ++i) {
    if (g_db[i].used) continue;
    g_db[i].used = 1;
    g_db[i].sum = 0;
    strncpy(g_db[i].name, name, sizeof g_db[i].name - 1);
    return &g_db[i];
  }
  return NULL;
}

static int db_open(const char *name, olib_db **out) {
  *out = db_create(name);
  return *out ? 0 : -1;
}

static long db_put(olib_db *db, long v) {
  ++g_calls;
  if (!is_db(db)) return -1;
  return db->sum += v;
}

static long db_sum(const olib_db *db) {
  ++g_calls;
  return is_db(db) ? db->sum : -1;
}

static olib_db *db_same(olib_db *db) {
  ++g_calls;
  return db;
}

static void db_destroy(olib_db *db) {
  ++g_calls;
  if (is_db(db)) db->used = 0;
}

static void *cursor_new(olib_db *db) {
  ++g_calls;
  if (!is_db(db)) return NULL;
  for (int i = 0; i < MAX_CUR; ++i) {
    if (g_cur[i].db) continue;
    g_cur[i].db = db;
    g_cur[i].pos = 0;
    return &g_cur[i];
  }
  return NULL;
}

static long cursor_next(void *cur) {
  ++g_calls;
  const uintptr_t a = (uintptr_t)cur, lo = (uintptr_t)&g_cur[0], hi = (uintptr_t)&g_cur[MAX_CUR];
  if (a < lo || a >= hi || (a - lo) % sizeof(struct cursor) != 0) return -1;
  struct cursor *c = cur;
  return c->db ? c->pos++ : -1;
}

static olib_db *wild(void) {
  ++g_calls;
  return (olib_db *)OLIB_WILD;
}

static int wild_out(olib_db **out) {
  ++g_calls;
  *out = (olib_db *)OLIB_WILD;
  return 0;
}

static long is_wild(olib_db *db) {
  ++g_calls;
  return (uintptr_t)db == OLIB_WILD;
}

static long calls(void) { return ++g_calls; }

static long visit(olib_db *db, const olib_host *host) {
  ++g_calls;
  return host->seen(db);
}

static const olib_api api = {db_create, db_create, db_open, db_put, db_sum, db_same, db_destroy, cursor_new,
                             cursor_next, wild,    wild_out,  is_wild, calls,  visit};

const olib_api *olib_entry(void) { return &api; }
