/* ckpt_model.c - see ckpt_model.h. Plain C, no ward headers. */
#define _POSIX_C_SOURCE 200809L
#include "ckpt_model.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct setting {
  uint32_t key;
  uint64_t value;
  struct setting *next;
};

#define BUCKETS 64
static uint64_t *g_model;            /* heap */
static uint32_t g_words;
static struct setting *g_buckets[BUCKETS]; /* .bss, pointing into the heap */
static long g_keys;
static uint64_t g_trained = 0x1234;  /* .data */
static char *g_ctor_block;           /* allocated before any call */

__attribute__((constructor)) static void made_at_load(void) {
  g_ctor_block = malloc(64);
  if (g_ctor_block) memcpy(g_ctor_block, "constructed", 12);
}

static uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  return x ^ (x >> 33);
}

static long reset(uint32_t n) {
  uint64_t *m = calloc(n ? n : 1, sizeof *m);
  if (!m) return -1;
  free(g_model);
  g_model = m;
  g_words = n;
  return 0;
}

static long train(uint64_t seed, uint32_t rounds) {
  for (uint32_t r = 0; r < rounds; ++r)
    for (uint32_t i = 0; i < g_words; ++i) g_model[i] = mix(g_model[i] + seed + r + (i ? g_model[i - 1] : 0));
  g_trained = mix(g_trained + seed + rounds);
  if (g_ctor_block) g_ctor_block[(seed + rounds) % 64] ^= 1; /* state in the constructor's block */
  return 0;
}

static long set(uint32_t key, uint64_t value) {
  struct setting **b = &g_buckets[key % BUCKETS];
  for (struct setting *s = *b; s; s = s->next)
    if (s->key == key) {
      s->value = value;
      return g_keys;
    }
  struct setting *s = malloc(sizeof *s);
  if (!s) return -1;
  s->key = key;
  s->value = value;
  s->next = *b;
  *b = s;
  return ++g_keys;
}

static long del(uint32_t key) {
  for (struct setting **p = &g_buckets[key % BUCKETS]; *p; p = &(*p)->next)
    if ((*p)->key == key) {
      struct setting *s = *p;
      *p = s->next;
      free(s);
      return --g_keys;
    }
  return g_keys;
}

static uint64_t get(uint32_t key) {
  for (struct setting *s = g_buckets[key % BUCKETS]; s; s = s->next)
    if (s->key == key) return s->value;
  return 0;
}

static uint64_t digest(void) {
  uint64_t h = mix(g_trained + (uint64_t)g_keys * 31 + g_words);
  for (uint32_t i = 0; i < g_words; ++i) h = mix(h ^ g_model[i]);
  for (int b = 0; b < BUCKETS; ++b)
    for (struct setting *s = g_buckets[b]; s; s = s->next) h ^= mix(((uint64_t)s->key << 32) ^ s->value);
  for (int i = 0; g_ctor_block && i < 64; ++i) h = mix(h + (unsigned char)g_ctor_block[i]);
  return h;
}

static volatile int *volatile g_wild = (volatile int *)16;
static long crash(void) { return *g_wild; }

static long spawn(void) {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  return (long)pid;
}

static const ckpt_model_api api = {reset, train, set, del, get, digest, crash, spawn};

const ckpt_model_api *ckpt_model_entry(void) { return &api; }
