/* ckpt_tls.c - the ckpt_model table over thread-local state: what a checkpoint refuses
 * (a thread's TLS block is not part of the heap or the plugin's data). */
#include "ckpt_model.h"

static __thread uint64_t t_value;

static long reset(uint32_t n) { return (long)(t_value = n) - (long)n; }
static long train(uint64_t seed, uint32_t rounds) {
  t_value += seed * rounds;
  return 0;
}
static long set(uint32_t key, uint64_t value) {
  t_value ^= key ^ value;
  return 1;
}
static long del(uint32_t key) { return (long)(key & 0); }
static uint64_t get(uint32_t key) { return t_value + key; }
static uint64_t digest(void) { return t_value; }
static volatile int *volatile g_wild = (volatile int *)16;
static long crash(void) { return *g_wild; }
static long spawn(void) { return -1; }

static const ckpt_model_api api = {reset, train, set, del, get, digest, crash, spawn};

const ckpt_model_api *ckpt_model_entry(void) { return &api; }
