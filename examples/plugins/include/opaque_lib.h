/* opaque_lib.h - ABI of a small plugin that hands out pointers to its own objects, the way C
 * libraries do (sqlite3 *, FILE *): an incomplete struct type, a void * cursor, and an
 * out-parameter olib_db **. It can also hand out wild pointers, and checks every pointer it is
 * given against its own objects (so a test sees exactly what reached it). */
#ifndef WARD_EXAMPLE_OPAQUE_LIB_H
#define WARD_EXAMPLE_OPAQUE_LIB_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct olib_db olib_db; /* defined only inside the plugin */

#define OLIB_WILD ((uintptr_t)0xdead0000beefull) /* what wild() returns: nothing the plugin owns */

typedef struct olib_host {
  long (*seen)(olib_db *db); /* the host is shown one of the plugin's pointers */
} olib_host;

typedef struct olib_api {
  olib_db *(*db_create)(const char *name);         /* NULL for "" or when full (8 databases) */
  olib_db *(*db_create_scratch)(const char *name); /* the same, declared as not replayed */
  int (*db_open)(const char *name, olib_db **out); /* 0 and *out set; -1 and *out = NULL */
  long (*db_put)(olib_db *db, long v);             /* adds v; the new sum, -1 if db is not one */
  long (*db_sum)(const olib_db *db);               /* the sum, -1 if db is not one */
  olib_db *(*db_same)(olib_db *db);                /* returns db itself */
  void (*db_destroy)(olib_db *db);                 /* NULL is fine, like free() */
  void *(*cursor_new)(olib_db *db);                /* a cursor over db, NULL if db is not one */
  long (*cursor_next)(void *cur);                  /* 0, 1, 2, ... ; -1 if cur is not a cursor */
  olib_db *(*wild)(void);                          /* returns OLIB_WILD */
  int (*wild_out)(olib_db **out);                  /* stores OLIB_WILD in *out, returns 0 */
  long (*is_wild)(olib_db *db);                    /* 1 if db == OLIB_WILD */
  long (*calls)(void);                             /* calls received so far, this one included */
  long (*visit)(olib_db *db, const olib_host *host); /* returns host->seen(db) */
} olib_api;

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
const olib_api *olib_entry(void);

#ifdef __cplusplus
}
#endif

#endif
