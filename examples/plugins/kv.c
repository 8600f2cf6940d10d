/* kv.c - see kv.h. Plain C, no ward headers. */
#include "kv.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TABLES 16
#define MAX_KEYS 1024
#define MAX_VAL 64

struct entry {
  int used;
  uint32_t key;
  uint32_t len;
  uint8_t val[MAX_VAL];
};
struct table {
  uint64_t id;
  char name[32];
  long count;
  struct entry *entries; /* open addressing, MAX_KEYS slots */
};

static const kv_host *g_host;
static uint64_t g_journal;
static uint32_t g_journal_off;
static struct table g_tables[MAX_TABLES];
static int g_ntables;
static uint64_t g_next_id;
static volatile int g_fault;

static void misbehave(void) {
  const int f = g_fault;
  g_fault = 0;
  switch (f) {
    case KV_FAULT_SEGV: *(volatile int *)0 = 1; break;
    case KV_FAULT_HANG: for (;;) { } break;
    case KV_FAULT_WILD_WRITE: *(volatile uint64_t *)(uintptr_t)0x7ff000000000ull = 1; break;
    case KV_FAULT_SYSCALL: (void)open("/etc/passwd", O_RDONLY); break;
    case KV_FAULT_HANDLE_LEAK:
      for (int i = 0; i < 1000000; ++i)
        if (g_host->buf_open(16) == 0) break;
      break;
    case KV_FAULT_FORGED: {
      const uint8_t b = 1;
      g_host->buf_write(g_journal ^ 0x5a5a5a5a5a5aull, 0, &b, 1);
      break;
    }
    case KV_FAULT_MEMORY:
      for (;;) {
        volatile char *p = malloc(32u << 20);
        if (!p) { *(volatile char *)0 = 0; }
        /* RLIMIT_AS counts address space, not touched pages: one store per chunk is enough to
           hit the limit, and keeps this fault fast on a loaded machine (touching every page
           took longer than the test's 300 ms timeout under load, and was reported `hung`). */
        p[0] = 1;
      }
      break;
    case KV_FAULT_EXIT: exit(3);
    case KV_FAULT_ABORT: abort();
    default: break;
  }
}

static int init(const kv_host *host) {
  g_host = host;
  for (int i = 0; i < g_ntables; ++i) free(g_tables[i].entries);
  memset(g_tables, 0, sizeof g_tables);
  g_ntables = 0;
  /* Ids differ between instances, as real plugin-issued handles do. */
  g_next_id = ((uint64_t)getpid() << 20) | 1;
  g_journal = host && host->buf_open ? host->buf_open(4096) : 0;
  g_journal_off = 0;
  if (host && host->log) host->log("kv: ready");
  return g_journal ? 0 : -1;
}

static struct table *find(uint64_t id) {
  for (int i = 0; i < g_ntables; ++i)
    if (g_tables[i].id == id) return &g_tables[i];
  return NULL;
}

static uint64_t open_table(const char *name) {
  if (!name || g_ntables == MAX_TABLES) return 0;
  struct table *t = &g_tables[g_ntables];
  t->entries = calloc(MAX_KEYS, sizeof *t->entries);
  if (!t->entries) return 0;
  t->id = g_next_id++;
  snprintf(t->name, sizeof t->name, "%s", name);
  ++g_ntables;
  return t->id;
}

/* Open addressing with tombstones: used is 0 (empty: a probe stops), 1 (live) or 2 (deleted:
   a probe goes on past it, an insert may reuse it). */
static struct entry *slot(struct table *t, uint32_t key, int create) {
  struct entry *reuse = NULL;
  for (uint32_t i = 0; i < MAX_KEYS; ++i) {
    struct entry *e = &t->entries[(key * 2654435761u + i) % MAX_KEYS];
    if (e->used == 1 && e->key == key) return e;
    if (e->used == 1) continue;
    if (!reuse) reuse = e;
    if (!e->used) break;
  }
  if (!create || !reuse) return NULL;
  reuse->used = 1;
  reuse->key = key;
  ++t->count;
  return reuse;
}

static long put(uint64_t table, uint32_t key, const uint8_t *val, size_t n) {
  if (g_fault) misbehave();
  struct table *t = find(table);
  if (!t || n > MAX_VAL) return -22;
  struct entry *e = slot(t, key, 1);
  if (!e) return -28;
  memcpy(e->val, val, n);
  e->len = (uint32_t)n;
  /* Journal the key through the host object: a crossing that passes a handle. */
  if (g_journal_off + 4 > 4096) g_journal_off = 0;
  if (g_host->buf_write(g_journal, g_journal_off, (const uint8_t *)&key, 4) != 4) return -5;
  g_journal_off += 4;
  return (long)n;
}

static long get(uint64_t table, uint32_t key, uint8_t *out, size_t cap) {
  if (g_fault) misbehave();
  struct table *t = find(table);
  if (!t) return -22;
  struct entry *e = slot(t, key, 0);
  if (!e) return -2;
  const size_t n = e->len < cap ? e->len : cap;
  memcpy(out, e->val, n);
  return (long)e->len;
}

static long count(uint64_t table) {
  struct table *t = find(table);
  return t ? t->count : -1;
}

static int inject(int fault) {
  g_fault = fault;
  return 0;
}

static long ping(void) { return 0; }

static long del(uint64_t table, uint32_t key) {
  if (g_fault) misbehave();
  struct table *t = find(table);
  if (!t) return -22;
  struct entry *e = slot(t, key, 0);
  if (!e) return -2;
  e->used = 2;
  --t->count;
  return 0;
}

static int close_table(uint64_t table) {
  for (int i = 0; i < g_ntables; ++i) {
    if (g_tables[i].id != table) continue;
    free(g_tables[i].entries);
    memmove(&g_tables[i], &g_tables[i + 1], (size_t)(g_ntables - i - 1) * sizeof g_tables[0]);
    --g_ntables;
    memset(&g_tables[g_ntables], 0, sizeof g_tables[0]);
    return 0;
  }
  return -22;
}

static const kv_api api = {init, open_table, put, get, count, inject, ping, del, close_table};

const kv_api *kv_entry(void) { return &api; }
