// The checkpoint area: the part of a process domain's arena that holds a checkpointable
// extension's heap and, while a checkpoint is taken, images of its writable data. Both sides of
// the channel agree on this layout (plain C++, no ward dependencies: the helper includes it).
//
// Who writes what. The child owns the area while it runs: every allocation the plugin (and the
// dynamic linker loading it) makes is carved from `heap` by the helper's allocator
// (src/helper/checkpoint.cc), whose whole state lives in this header, so the area's bytes *are*
// the heap. At a checkpoint the child copies its plugin objects' writable segments after
// `heap_top` and records where; the host copies [0, end) into its own memory. At a restore the
// host writes those bytes back into a fresh child's area (same addresses: the arena is pinned,
// and a checkpointable child runs with a fixed layout) and the child copies the images back
// over its segments. The host trusts nothing it reads here: it reads `heap_top` and the image
// range once and copies at most `size` bytes; a lying child only spoils its own checkpoint.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ward::wire {

inline constexpr std::uint64_t kCkptMagic = 0x3154504b43445257ull;  // "WRDCKPT1"
inline constexpr std::uint32_t kCkptMaxSegs = 32;
inline constexpr std::uint32_t kCkptClasses = 48;   // size classes 16 << k
inline constexpr std::uint64_t kCkptHeapStart = 8192;  // the header's pages, then the heap

// Why a child's state cannot be checkpointed (CkptArea::refused), set at load.
inline constexpr std::uint32_t kCkptTls = 1;       // a loaded object has thread-local storage
inline constexpr std::uint32_t kCkptTooManySegs = 2;

// Answers in Msg::ret of `checkpointed` / `restored` (0: done).
inline constexpr std::uint64_t kCkptFull = 1;      // the images do not fit after the heap
inline constexpr std::uint64_t kCkptRefused = 2;   // see `refused`
inline constexpr std::uint64_t kCkptMismatch = 3;  // restore: the fresh child's layout differs

struct CkptSeg {
  std::uint64_t addr;  // in the child
  std::uint64_t len;
};

struct CkptArea {
  std::uint64_t magic;
  std::uint64_t size;       // bytes of the area (host writes it before the child starts)
  std::uint64_t heap_top;   // first byte never allocated (area offset)
  std::uint64_t load_mark;  // heap_top when the plugin had been loaded (a restore checks it)
  std::uint64_t image_off;  // at a checkpoint: the segment images, back to back
  std::uint64_t image_len;
  std::uint32_t nsegs;
  std::uint32_t refused;    // kCkpt* reason, 0 if checkpointable
  CkptSeg segs[kCkptMaxSegs];
  std::uint64_t free_list[kCkptClasses];  // per class: a free block's address in the child, or 0
};
static_assert(sizeof(CkptArea) <= kCkptHeapStart);

}  // namespace ward::wire
