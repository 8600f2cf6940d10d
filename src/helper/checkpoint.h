// The child's half of checkpoints (include/ward/process/checkpoint_area.h has the layout and who
// writes what; docs/architecture.md, "Checkpoints", the scheme).
//
// What a checkpoint holds of the child: the heap the plugin allocates from (every malloc from
// the moment the plugin starts loading, the dynamic linker's for it included, is carved from the
// shared checkpoint area by the allocator here) and the writable segments of the objects loaded
// with the plugin (its .data/.bss and its dependencies' not already in the helper), less their
// read-only-after-relocation (RELRO) part. What it does not hold, and why that is safe: the
// stack (a checkpoint is taken at the loop head, where no plugin frame is live); the helper's
// own state and the libraries it loaded before the plugin (libc's internal state included: a
// plugin that keeps state there, rand()'s seed say, is not restored — documented);
// thread-local storage (refused at load: the block hangs off the thread, not the heap).
//
// Single-threaded, like the helper: a checkpointable extension has no threads of its own (the
// host refuses the policy that would allow them).
#pragma once

#include <cstddef>
#include <cstdint>

#include "ward/process/checkpoint_area.h"

namespace ward::helper::ckpt {

// Before the plugin is loaded: the area (mapped at `area`, `size` bytes) becomes the heap of
// every allocation from now on; earlier ones stay glibc's (free and realloc route by address).
void begin(wire::CkptArea* area, std::uint64_t size);
// After the plugin is loaded: notes the writable segments of the objects loaded since begin()
// and the heap's extent (a restore checks both), or why the state is not checkpointable.
void loaded();
// Whether the allocator below serves (after begin()).
bool active();
bool owns(const void* p);

// The allocator (malloc_hook.cc routes to it while active). Power-of-two size classes from 16
// bytes, a free list per class in the area's header, never returned to the kernel: a block
// freed is reused by the next allocation of its class. Null when the area is full.
void* alloc(std::size_t n);
void* alloc_aligned(std::size_t align, std::size_t n);
void release(void* p);  // p owned by the area
void* resize(void* p, std::size_t n);  // p owned by the area, or null
std::size_t usable(const void* p);
// glibc's malloc_usable_size, for blocks glibc allocated before begin().
std::size_t libc_usable(void* p);

// At the loop head, for the host: copies the segments after the heap (0, or a kCkpt* reason).
std::uint64_t take();
// In a fresh child parked at its loop head, after the host wrote a checkpoint into the area:
// checks the layout is this child's and copies the images over the segments (0, or a reason).
std::uint64_t restore();

}  // namespace ward::helper::ckpt
