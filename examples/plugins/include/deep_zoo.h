/* deep_zoo.h - a plugin ABI of descriptors, as many audio and video plugin ABIs have: a getter
 * returns a struct of data (strings, counts, arrays sized by them, nested structs) and function
 * pointers; an info call fills a caller's struct with pointers to the plugin's own strings. */
#ifndef WARD_EXAMPLE_DEEP_ZOO_H
#define WARD_EXAMPLE_DEEP_ZOO_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct zoo_range {
  int lo;
  int hi;
} zoo_range;

typedef struct zoo_port {
  const char *name;
  int flags;
  zoo_range range;
} zoo_port;

typedef struct zoo_desc {
  unsigned long id;
  const char *label;
  bool stereo;
  char tag[6];
  unsigned int nports;
  const int *kinds;          /* nports */
  const char *const *names;  /* nports strings */
  const zoo_port *ports;     /* nports, each with a string of its own */
  const zoo_range *main_range;
  const char *comment;       /* may be NULL */
  void *impl;                /* private to the plugin */
  long (*scale)(const struct zoo_desc *self, long x);
  long (*sum)(const struct zoo_desc *self, const int *v, unsigned long n);
  void (*reserved)(void);    /* always NULL */
} zoo_desc;

typedef struct zoo_info {
  const char *name;
  const char *author;
  int version;
  bool experimental;
} zoo_info;

/* Descriptors 0 and 1; NULL past the last. */
const zoo_desc *zoo_descriptor(unsigned long index);
/* Fills *info with pointers to static strings. */
void zoo_get_info(zoo_info *info);

/* Hostile plugin (hostile/deep_hostile.c): descriptor number `how` is broken in one way. */
const zoo_desc *zoo_hostile(int how);
void zoo_hostile_info(zoo_info *info);

#ifdef __cplusplus
}
#endif

#endif
