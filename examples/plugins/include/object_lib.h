/* object_lib.h - a descriptor plugin ABI with instances, in the style of LADSPA: a getter returns
 * a descriptor (data and function pointers), the descriptor's instantiate makes an instance that
 * keeps a gain and two port buffers connected once, run processes them. The descriptors live on
 * the heap, so each process has them at addresses of its own. Used by the supervised-object
 * tests (src/recovery/object_recovery_test.cc). */
#ifndef WARD_EXAMPLE_OBJECT_LIB_H
#define WARD_EXAMPLE_OBJECT_LIB_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct obj_desc {
  const char *label;
  unsigned long id;
  void *(*instantiate)(const struct obj_desc *self, int gain);
  /* port 0: input, port 1: output; the instance keeps the pointers */
  void (*connect)(void *instance, unsigned long port, float *buffer);
  /* out[i] = in[i] * gain + id, for n samples; returns the number of runs of this instance */
  long (*run)(void *instance, unsigned long n);
  /* ends the process: 1 SIGSEGV, 2 abort, anything else _exit */
  long (*crash)(void *instance, int how);
  long (*peek)(const struct obj_desc *self); /* self->id */
} obj_desc;

/* Descriptors 0 ("gain", id 7) and 1 ("offset", id 100); NULL past the last. */
const obj_desc *obj_descriptor(unsigned long index);
/* From now on, in this process, obj_descriptor returns descriptors without `run` (a plugin whose
 * descriptors differ from one process to the next). */
void obj_poison(void);

#ifdef __cplusplus
}
#endif

#endif
