/* object_lib.c - see object_lib.h. Written like any plugin: nothing here knows about ward. */
#include "object_lib.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

struct instance {
  const obj_desc *desc;
  int gain;
  long runs;
  float *port[2];
};

static void *obj_instantiate(const obj_desc *self, int gain) {
  struct instance *i = calloc(1, sizeof *i);
  if (!i) return NULL;
  i->desc = self;
  i->gain = gain;
  return i;
}

static void obj_connect(void *instance, unsigned long port, float *buffer) {
  struct instance *i = instance;
  if (port < 2) i->port[port] = buffer;
}

static long obj_run(void *instance, unsigned long n) {
  struct instance *i = instance;
  if (!i->port[0] || !i->port[1]) return -1;
  for (unsigned long k = 0; k < n; ++k) i->port[1][k] = i->port[0][k] * (float)i->gain + (float)i->desc->id;
  return ++i->runs;
}

static long obj_crash(void *instance, int how) {
  (void)instance;
  if (how == 1) raise(SIGSEGV);
  if (how == 2) abort();
  _exit(3);
}

static long obj_peek(const obj_desc *self) { return (long)self->id; }

static obj_desc *made[2];
static int poisoned;

const obj_desc *obj_descriptor(unsigned long index) {
  if (index >= 2) return NULL;
  if (!made[index]) {
    obj_desc *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->label = index == 0 ? "gain" : "offset";
    d->id = index == 0 ? 7 : 100;
    d->instantiate = obj_instantiate;
    d->connect = obj_connect;
    d->run = poisoned ? NULL : obj_run;
    d->crash = obj_crash;
    d->peek = obj_peek;
    made[index] = d;
  }
  return made[index];
}

void obj_poison(void) {
  poisoned = 1;
  made[0] = made[1] = NULL; /* the next descriptors are new ones, without run */
}
