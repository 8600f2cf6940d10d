/* Entry symbols that are not what the host declared (probe_api's table getter). Each must be
 * refused at load with a clear load_failed, never taken as a table whose first call crashes:
 *  - entry_returns_int:  a function returning a small integer, not a pointer;
 *  - entry_returns_data: a function returning readable memory that holds no code pointers;
 *  - entry_data:         a data object, not a function at all. */
#include <stdint.h>

#include "probe.h"

PROBE_EXPORT intptr_t entry_returns_int(void) { return 42; }

static const uintptr_t not_a_table[8] = {0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666, 0x7777, 0x8888};
PROBE_EXPORT const void *entry_returns_data(void) { return not_a_table; }

PROBE_EXPORT const uintptr_t entry_data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
