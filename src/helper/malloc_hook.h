// Allocation-failure reporting. The helper interposes malloc and its relatives (malloc_hook.cc):
// the helper is linked with exported symbols, and an executable comes first in symbol lookup, so
// the plugin's allocations come here too. The first failed allocation's size is recorded for the
// host, which reads it to tell "ran out of memory" from other crashes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace ward::helper {

// Where failures go from now on: the fault record's first-failure word (compare-and-swap from 0,
// so the first failure stays). Until this is called, failures are not recorded.
void report_alloc_failures_to(std::atomic<std::uint64_t>* first_failed);

// Records a failed allocation of n bytes (n == 0 is not recorded).
void note_alloc_failure(std::size_t n);

}  // namespace ward::helper
