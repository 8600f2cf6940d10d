/* hostile_arena.h - what a hostile plugin can learn about ward's shared arena without any ward
 * header: every buffer the host hands it lives in the arena, and the arena starts with a control
 * block whose first word is a fixed magic. The offsets below are checked against ward's own
 * layout (wire::Control) by static_asserts in src/process/hostile_test.cc, so a layout change
 * breaks the build, not silently the test. */
#ifndef WARD_EXAMPLE_HOSTILE_ARENA_H
#define WARD_EXAMPLE_HOSTILE_ARENA_H

#include <stdint.h>
#include <string.h>

#define HOSTILE_ARENA_MAGIC 0x31414e4552414457ull /* "WDARENA1" */
#define HOSTILE_TO_CHILD 128u                     /* Doorbell host -> child */
#define HOSTILE_TO_HOST 192u                      /* Doorbell child -> host */
#define HOSTILE_DOORBELL_CPU 8u                   /* Doorbell::cpu */
#define HOSTILE_FAULT 256u                        /* Fault record */
#define HOSTILE_FAULT_SYSCALL 4u                  /* Fault::syscall_nr */
#define HOSTILE_FAULT_TABLE 8u                    /* Fault::ungranted_table */
#define HOSTILE_FAULT_FN 12u                      /* Fault::ungranted_fn */

/* The arena's start, found by walking down page by page from a pointer into it: the pages in
 * between all belong to the same mapping, so every read is safe. */
static inline unsigned char *hostile_find_arena(const void *inside) {
  uintptr_t page = (uintptr_t)inside & ~(uintptr_t)4095;
  for (int i = 0; i < (1 << 20); ++i, page -= 4096) {
    uint64_t magic;
    memcpy(&magic, (const void *)page, sizeof magic);
    if (magic == HOSTILE_ARENA_MAGIC) return (unsigned char *)page;
  }
  return 0;
}

#endif
