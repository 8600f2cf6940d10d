#include "probe.h"

#include <link.h>
#include <setjmp.h>
#include <signal.h>

#include <cstdint>
#include <cstring>

namespace ward::probe {

bool in_executable_segment(const void* p) {
  struct Probe {
    std::uintptr_t addr;
    bool found;
  } probe{reinterpret_cast<std::uintptr_t>(p), false};
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* data) {
        auto& pr = *static_cast<Probe*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
          const std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
          if (pr.addr >= lo && pr.addr - lo < ph.p_memsz) pr.found = true;
        }
        return pr.found ? 1 : 0;
      },
      &probe);
  return probe.found;
}

namespace {
sigjmp_buf g_jump;
}

bool guarded(void (*fn)(void*), void* arg) {
  struct sigaction sa {}, old_segv{}, old_bus{};
  sa.sa_handler = [](int) { siglongjmp(g_jump, 1); };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &old_segv);
  sigaction(SIGBUS, &sa, &old_bus);
  bool ok = false;
  if (sigsetjmp(g_jump, 1) == 0) {
    fn(arg);
    ok = true;
  }
  sigaction(SIGSEGV, &old_segv, nullptr);
  sigaction(SIGBUS, &old_bus, nullptr);
  return ok;
}

bool copy_readable(const void* src, void* dst, std::size_t n) {
  struct Copy {
    const void* src;
    void* dst;
    std::size_t n;
  } c{src, dst, n};
  return guarded([](void* a) {
    auto* c = static_cast<Copy*>(a);
    std::memcpy(c->dst, c->src, c->n);
  }, &c);
}

}  // namespace ward::probe
