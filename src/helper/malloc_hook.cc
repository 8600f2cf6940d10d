// The malloc interposer (malloc_hook.h). Each entry calls glibc's own allocator and only adds
// the report; none of them allocates.
#include "malloc_hook.h"

#include <cerrno>
#include <cstdlib>

extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);
extern "C" void* __libc_memalign(size_t, size_t);

namespace ward::helper {

namespace {
std::atomic<std::uint64_t>* g_first_failed = nullptr;
}

void report_alloc_failures_to(std::atomic<std::uint64_t>* first_failed) { g_first_failed = first_failed; }

void note_alloc_failure(std::size_t n) {
  if (g_first_failed && n) {
    std::uint64_t expected = 0;
    g_first_failed->compare_exchange_strong(expected, n);
  }
}

}  // namespace ward::helper

using ward::helper::note_alloc_failure;

extern "C" {
__attribute__((visibility("default"))) void* malloc(size_t n) {
  void* p = __libc_malloc(n);
  if (!p) note_alloc_failure(n);
  return p;
}
__attribute__((visibility("default"))) void* calloc(size_t a, size_t b) {
  void* p = __libc_calloc(a, b);
  if (!p) note_alloc_failure((a && b) ? a * b : 1);
  return p;
}
__attribute__((visibility("default"))) void* realloc(void* q, size_t n) {
  void* p = __libc_realloc(q, n);
  if (!p && n) note_alloc_failure(n);
  return p;
}
__attribute__((visibility("default"))) void* aligned_alloc(size_t a, size_t n) {
  void* p = __libc_memalign(a, n);
  if (!p) note_alloc_failure(n);
  return p;
}
__attribute__((visibility("default"))) int posix_memalign(void** out, size_t a, size_t n) {
  if (a < sizeof(void*) || (a & (a - 1)) != 0) return EINVAL;
  void* p = __libc_memalign(a, n);
  if (!p) {
    note_alloc_failure(n);
    return ENOMEM;
  }
  *out = p;
  return 0;
}
}
