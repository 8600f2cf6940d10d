// The malloc interposer (malloc_hook.h). Each entry calls glibc's own allocator, or, in a
// checkpointable child once the plugin starts loading, the checkpoint area's (checkpoint.h), and
// only adds the report; none of them allocates otherwise. Blocks are freed by whichever
// allocator owns their address, so the helper's early glibc blocks stay glibc's.
#include "malloc_hook.h"

#include "checkpoint.h"

#include <cerrno>
#include <cstdlib>

extern "C" void* __libc_malloc(size_t);
extern "C" void* __libc_calloc(size_t, size_t);
extern "C" void* __libc_realloc(void*, size_t);
extern "C" void* __libc_memalign(size_t, size_t);
extern "C" void __libc_free(void*);

namespace ckpt = ward::helper::ckpt;

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
  void* p = ckpt::active() ? ckpt::alloc(n) : __libc_malloc(n);
  if (!p) note_alloc_failure(n);
  return p;
}
__attribute__((visibility("default"))) void free(void* p) {
  if (!p) return;
  if (ckpt::owns(p)) ckpt::release(p);
  else __libc_free(p);
}
__attribute__((visibility("default"))) size_t malloc_usable_size(void* p) {
  if (!p) return 0;
  return ckpt::owns(p) ? ckpt::usable(p) : ckpt::libc_usable(p);
}
__attribute__((visibility("default"))) void* calloc(size_t a, size_t b) {
  void* p;
  if (ckpt::active()) {
    size_t n = 0;
    p = __builtin_mul_overflow(a, b, &n) ? nullptr : ckpt::alloc(n);
    if (p) __builtin_memset(p, 0, n);  // blocks are reused: not zero like fresh pages
  } else {
    p = __libc_calloc(a, b);
  }
  if (!p) note_alloc_failure((a && b) ? a * b : 1);
  return p;
}
__attribute__((visibility("default"))) void* realloc(void* q, size_t n) {
  void* p;
  if (q && !ckpt::owns(q)) p = __libc_realloc(q, n);  // a glibc block stays glibc's
  else if (ckpt::active()) p = ckpt::resize(q, n);
  else p = __libc_realloc(q, n);
  if (!p && n) note_alloc_failure(n);
  return p;
}
static void* aligned(size_t a, size_t n) { return ckpt::active() ? ckpt::alloc_aligned(a, n) : __libc_memalign(a, n); }
__attribute__((visibility("default"))) void* memalign(size_t a, size_t n) {
  void* p = aligned(a, n);
  if (!p) note_alloc_failure(n);
  return p;
}
__attribute__((visibility("default"))) void* valloc(size_t n) { return memalign(4096, n); }
__attribute__((visibility("default"))) void* pvalloc(size_t n) { return memalign(4096, (n + 4095) & ~size_t{4095}); }
__attribute__((visibility("default"))) void* aligned_alloc(size_t a, size_t n) {
  void* p = aligned(a, n);
  if (!p) note_alloc_failure(n);
  return p;
}
__attribute__((visibility("default"))) int posix_memalign(void** out, size_t a, size_t n) {
  if (a < sizeof(void*) || (a & (a - 1)) != 0) return EINVAL;
  void* p = aligned(a, n);
  if (!p) {
    note_alloc_failure(n);
    return ENOMEM;
  }
  *out = p;
  return 0;
}
}
