/* hostile_code.h - the machine code the load-check plugins try to run, and the way they run it:
 * copy it to `where` and call it. Returns 42 when `where` was both writable and executable (what
 * ward must never let plugin code find), -1 on architectures without a code sample; when `where`
 * is not executable the call faults. */
#ifndef WARD_EXAMPLE_HOSTILE_CODE_H
#define WARD_EXAMPLE_HOSTILE_CODE_H

#include <string.h>

static inline long hostile_run_code_at(void *where) {
#if defined(__x86_64__)
  static const unsigned char code[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3}; /* mov eax, 42; ret */
  memcpy(where, code, sizeof code);
  /* Keep the copy: nothing in C reads it, the call through the pointer does. */
  __asm__ volatile("" : : "r"(where) : "memory");
  long (*volatile fn)(void) = (long (*)(void))where;
  return fn();
#else
  (void)where;
  return -1;
#endif
}

#endif
