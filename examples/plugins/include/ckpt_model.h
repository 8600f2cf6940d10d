/* ckpt_model.h - a plugin whose state is costly to rebuild by replay, for checkpoints
 * (include/ward/recovery/checkpoint.h): a "model" trained by long computations over a heap
 * array, a hash map of settings on the heap, counters in .data/.bss, and a block its
 * constructor allocated (state made before any call). digest() hashes all of it. */
#ifndef CKPT_MODEL_H
#define CKPT_MODEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct ckpt_model_api {
  /* model of n 64-bit words (replaces the old one); 0 or -1 (out of memory) */
  long (*reset)(uint32_t n);
  /* `rounds` rounds of mixing over the whole model, seeded by `seed`: the costly call */
  long (*train)(uint64_t seed, uint32_t rounds);
  /* settings: key -> value, on the heap; set returns the number of keys */
  long (*set)(uint32_t key, uint64_t value);
  long (*del)(uint32_t key);
  uint64_t (*get)(uint32_t key);
  /* a hash of every piece of state (model, settings, counters, the constructor's block) */
  uint64_t (*digest)(void);
  /* faults: crash() dies by SIGSEGV; spawn() calls fork() and returns its result */
  long (*crash)(void);
  long (*spawn)(void);
} ckpt_model_api;

#endif
