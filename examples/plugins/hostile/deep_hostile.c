/* deep_hostile.c - descriptors that are broken in one way each (see zoo_hostile in deep_zoo.h):
 * what a buggy or hostile plugin returns where ward expects a descriptor. */
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "deep_zoo.h"

static long ok_scale(const zoo_desc *self, long x) { return (long)self->id * x; }
static const int some_data[4] = {1, 2, 3, 4};
static const char *const two_names[] = {"a", "b"};

static zoo_desc d;

/* A string that runs into unmapped memory without a terminator. */
static const char *unterminated(void) {
  char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  munmap(p + 4096, 4096);
  memset(p, 'A', 4096);
  return p;
}

/* A terminated string longer than any descriptor ward accepts (2 MiB). */
static const char *too_long(void) {
  const size_t n = 2u << 20;
  char *p = mmap(NULL, n + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  memset(p, 'B', n);
  p[n] = 0;
  return p;
}

const zoo_desc *zoo_hostile(int how) {
  memset(&d, 0, sizeof d);
  d.id = 7;
  d.label = "hostile";
  d.scale = ok_scale;
  switch (how) {
    case 1: d.label = (const char *)0x10; break;            /* wild string pointer */
    case 2: d.nports = 0xffffffffu; d.kinds = some_data; break; /* huge count */
    case 3: d.scale = (long (*)(const zoo_desc *, long))(void *)some_data; break; /* not code */
    case 4: d.comment = unterminated(); break;               /* unterminated string */
    case 5: return (const zoo_desc *)0x1000;                 /* the result itself is wild */
    case 6: d.comment = too_long(); break;                   /* longer than the limit */
    case 7: d.nports = 2; d.names = two_names; d.kinds = (const int *)0x18; break; /* wild array */
    case 8: { unsigned char b = 7; memcpy(&d.stereo, &b, 1); } break;  /* a bool that is not 0 or 1 */
    default: break;
  }
  return &d;
}

void zoo_hostile_info(zoo_info *info) {
  info->name = "fine";
  info->author = (const char *)0x20; /* wild */
  info->version = 1;
}
