// The child's half of checkpoints: checkpoint.h.
#include "checkpoint.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <cstring>

namespace w = ward::wire;

namespace ward::helper::ckpt {
namespace {

w::CkptArea* g_area = nullptr;
std::uint64_t g_size = 0;
bool g_active = false;
std::size_t (*g_libc_usable)(void*) = nullptr;
// This child's own layout, kept outside the area (a restore overwrites the area with another
// child's header and compares).
int g_objects_before = 0;
std::uint32_t g_nsegs = 0;
w::CkptSeg g_segs[w::kCkptMaxSegs];
std::uint64_t g_load_mark = 0;
std::uint32_t g_refused = 0;

constexpr std::uint64_t kHeader = 16;
constexpr std::uint64_t kAligned = ~0ull;  // header class of an aligned block's stand-in
constexpr std::uint64_t kTag = 0x6b6c62776172ull;  // "rawblk": a block header's second word

struct Block {
  std::uint64_t cls;  // size class, or kAligned
  std::uint64_t tag;  // kTag; for kAligned: the real payload's address
};

unsigned char* base() { return reinterpret_cast<unsigned char*>(g_area); }
Block* header_of(const void* p) {
  return reinterpret_cast<Block*>(const_cast<unsigned char*>(static_cast<const unsigned char*>(p)) - kHeader);
}
// An aligned block's stand-in header leads to the real one.
Block* real_header(const void* p) {
  Block* b = header_of(p);
  return b->cls == kAligned ? header_of(reinterpret_cast<void*>(b->tag)) : b;
}
void* payload_of(const void* p) {
  Block* b = header_of(p);
  return b->cls == kAligned ? reinterpret_cast<void*>(b->tag) : const_cast<void*>(p);
}

int class_for(std::size_t n) {
  if (n > (std::uint64_t{1} << 46)) return -1;
  const std::uint64_t need = n + kHeader;
  int k = 0;
  while ((std::uint64_t{16} << k) < need) ++k;
  return k < static_cast<int>(w::kCkptClasses) ? k : -1;
}

int count_objects(dl_phdr_info*, std::size_t, void* n) {
  ++*static_cast<int*>(n);
  return 0;
}

std::uint64_t page_down(std::uint64_t a) { return a & ~std::uint64_t{4095}; }

// The writable, not-RELRO part of each object loaded after the first g_objects_before.
int note_segments(dl_phdr_info* info, std::size_t, void* seen) {
  int& i = *static_cast<int*>(seen);
  if (i++ < g_objects_before) return 0;
  std::uint64_t relro_lo = 0, relro_hi = 0;
  for (int p = 0; p < info->dlpi_phnum; ++p) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[p];
    if (ph.p_type == PT_TLS && ph.p_memsz > 0) g_refused = w::kCkptTls;
    if (ph.p_type == PT_GNU_RELRO) {
      relro_lo = page_down(info->dlpi_addr + ph.p_vaddr);
      relro_hi = page_down(info->dlpi_addr + ph.p_vaddr + ph.p_memsz);  // ld.so protects whole pages
    }
  }
  for (int p = 0; p < info->dlpi_phnum; ++p) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[p];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_W) || ph.p_memsz == 0) continue;
    std::uint64_t lo = info->dlpi_addr + ph.p_vaddr, hi = lo + ph.p_memsz;
    if (relro_hi > relro_lo && relro_lo <= lo && relro_hi > lo) lo = relro_hi < hi ? relro_hi : hi;
    if (hi <= lo) continue;
    if (g_nsegs == w::kCkptMaxSegs) {
      g_refused = w::kCkptTooManySegs;
      return 1;
    }
    g_segs[g_nsegs++] = {lo, hi - lo};
  }
  return 0;
}

std::uint64_t align16(std::uint64_t v) { return (v + 15) & ~std::uint64_t{15}; }

// glibc's malloc_usable_size has no internal alias to call past the interposer: found once, at
// start-up, for every child (the interposer serves non-checkpointable ones too).
[[gnu::constructor]] void find_libc_usable() {
  g_libc_usable = reinterpret_cast<std::size_t (*)(void*)>(dlsym(RTLD_NEXT, "malloc_usable_size"));
}

}  // namespace

void begin(w::CkptArea* area, std::uint64_t size) {
  g_objects_before = 0;
  dl_iterate_phdr(count_objects, &g_objects_before);
  g_area = area;
  g_size = size;
  std::memset(area, 0, sizeof *area);
  area->magic = w::kCkptMagic;
  area->size = size;
  area->heap_top = w::kCkptHeapStart;
  g_active = true;
}

void loaded() {
  int seen = 0;
  g_nsegs = 0;
  dl_iterate_phdr(note_segments, &seen);
  g_load_mark = g_area->heap_top;
  g_area->load_mark = g_load_mark;
  g_area->nsegs = g_nsegs;
  std::memcpy(g_area->segs, g_segs, sizeof g_segs);
  g_area->refused = g_refused;
}

bool active() { return g_active; }

bool owns(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p), b = reinterpret_cast<std::uintptr_t>(g_area);
  return g_area && a >= b + w::kCkptHeapStart && a < b + g_size;
}

void* alloc(std::size_t n) {
  const int k = class_for(n);
  if (k < 0) return nullptr;
  const std::uint64_t bs = std::uint64_t{16} << k;
  Block* b;
  if (g_area->free_list[k]) {
    auto* p = reinterpret_cast<unsigned char*>(g_area->free_list[k]);
    std::memcpy(&g_area->free_list[k], p, sizeof(std::uint64_t));
    b = header_of(p);
  } else {
    const std::uint64_t at = align16(g_area->heap_top);
    if (at > g_size || bs > g_size - at) return nullptr;
    g_area->heap_top = at + bs;
    b = reinterpret_cast<Block*>(base() + at);
  }
  b->cls = static_cast<std::uint64_t>(k);
  b->tag = kTag;
  return reinterpret_cast<unsigned char*>(b) + kHeader;
}

void* alloc_aligned(std::size_t align, std::size_t n) {
  if (align <= kHeader) return alloc(n);
  if (n > (std::uint64_t{1} << 46) || align > (std::uint64_t{1} << 40)) return nullptr;
  // Room for the alignment and a stand-in header in front of the aligned address.
  auto* p = static_cast<unsigned char*>(alloc(n + align + kHeader));
  if (!p) return nullptr;
  auto a = (reinterpret_cast<std::uintptr_t>(p) + kHeader + align - 1) & ~(std::uintptr_t{align} - 1);
  Block* stand_in = header_of(reinterpret_cast<void*>(a));
  stand_in->cls = kAligned;
  stand_in->tag = reinterpret_cast<std::uint64_t>(p);
  return reinterpret_cast<void*>(a);
}

void release(void* p) {
  void* real = payload_of(p);
  Block* b = header_of(real);
  if (b->tag != kTag || b->cls >= w::kCkptClasses) __builtin_trap();  // a corrupt heap: crash, be recovered
  std::memcpy(real, &g_area->free_list[b->cls], sizeof(std::uint64_t));
  g_area->free_list[b->cls] = reinterpret_cast<std::uint64_t>(real);
}

std::size_t usable(const void* p) {
  const Block* b = real_header(p);
  const auto end = reinterpret_cast<std::uintptr_t>(b) + (std::uint64_t{16} << b->cls);
  return end - reinterpret_cast<std::uintptr_t>(p);
}

std::size_t libc_usable(void* p) { return g_libc_usable ? g_libc_usable(p) : 0; }

void* resize(void* p, std::size_t n) {
  if (!p) return alloc(n);
  if (n == 0) {
    release(p);
    return nullptr;
  }
  const std::size_t have = usable(p);
  if (have >= n) return p;
  void* q = alloc(n);
  if (!q) return nullptr;
  std::memcpy(q, p, have);
  release(p);
  return q;
}

std::uint64_t take() {
  if (g_refused) return w::kCkptRefused;
  std::uint64_t off = align16(g_area->heap_top);
  const std::uint64_t start = off;
  for (std::uint32_t i = 0; i < g_nsegs; ++i) {
    if (off > g_size || g_segs[i].len > g_size - off) return w::kCkptFull;
    std::memcpy(base() + off, reinterpret_cast<const void*>(g_segs[i].addr), g_segs[i].len);
    off = align16(off + g_segs[i].len);
  }
  g_area->image_off = start;
  g_area->image_len = off - start;
  return 0;
}

std::uint64_t restore() {
  if (g_refused) return w::kCkptRefused;
  const w::CkptArea& a = *g_area;
  if (a.magic != w::kCkptMagic || a.size != g_size || a.load_mark != g_load_mark || a.nsegs != g_nsegs ||
      std::memcmp(a.segs, g_segs, g_nsegs * sizeof(w::CkptSeg)) != 0)
    return w::kCkptMismatch;
  std::uint64_t off = a.image_off;
  for (std::uint32_t i = 0; i < g_nsegs; ++i) {
    if (off > g_size || g_segs[i].len > g_size - off) return w::kCkptMismatch;
    std::memcpy(reinterpret_cast<void*>(g_segs[i].addr), base() + off, g_segs[i].len);
    off = align16(off + g_segs[i].len);
  }
  return 0;
}

}  // namespace ward::helper::ckpt
