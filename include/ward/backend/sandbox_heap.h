// SandboxHeap: memory that outlives a call. A region of the extension's window (the process
// backend: the end of its shared arena, beside the frame stack) that the host allocates from and
// the extension keeps pointers into between calls, as RLBox's malloc_in_sandbox does.
//
// Who may touch what: the extension reads and writes the region's bytes at any time (they are
// its memory; every host read of them is untrusted). The allocator's metadata (which blocks are
// live, which are free) lives only here, in host memory: an extension that scribbles over the
// whole window cannot corrupt it or make the host hand out overlapping blocks.
//
// Windows: the heap's bytes live in one domain at a time. The backend attaches its region when a
// domain starts and detaches it before the memory goes away. The Supervisor moves a heap into the
// fresh domain of a restart (attach with copy_bytes): offsets, and, since the fresh child maps its
// arena at the same address, the extension's addresses stay what they were. A host pointer into
// the region is valid only until the window changes (a restart, or the domain ending); handles
// (iface/sandbox.h) hold offsets and ask for the current window on every access.
//
// Threads: every member may be called from any thread (one mutex). A host access that races a
// window change (a host thread writing while a restart moves the heap) may be lost; accesses made
// through copy_in/copy_out never touch unmapped memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "ward/core/error.h"

namespace ward {

class SandboxHeap : public std::enable_shared_from_this<SandboxHeap> {
 public:
  static constexpr std::uint64_t kMinAlign = 16;
  static constexpr std::uint64_t kMaxAlign = 4096;

  // Where the heap's bytes are: `host` is the heap's first byte in the host, `view_off` its offset
  // in the domain's window (what a frame slot names), `ext` the address the extension sees it at.
  struct Window {
    std::byte* host = nullptr;
    std::uint64_t view_off = 0;
    std::uint64_t ext = 0;
  };
  // A live allocation found by a host address: the heap, and the offset in it.
  struct Found {
    std::shared_ptr<SandboxHeap> heap;
    std::uint64_t off = 0;
  };

  // A heap of `size` bytes (a multiple of kMinAlign), registered so locate_any can find it.
  [[nodiscard]] static std::shared_ptr<SandboxHeap> create(std::uint64_t size);
  ~SandboxHeap();
  SandboxHeap(const SandboxHeap&) = delete;
  SandboxHeap& operator=(const SandboxHeap&) = delete;

  [[nodiscard]] std::uint64_t size() const { return size_; }

  // ---- the allocator (offsets from the heap's start) ----
  // `bytes` (0 counts as 1) aligned to max(align, kMinAlign), zeroed. Errors: misuse for an alignment
  // that is not a power of two or above kMaxAlign; limit when no free block fits.
  [[nodiscard]] Result<std::uint64_t> alloc(std::uint64_t bytes, std::uint64_t align);
  // Gives back the block starting at `off`. misuse if no live block starts there.
  [[nodiscard]] Result<void> release(std::uint64_t off);
  // Bytes in live blocks.
  [[nodiscard]] std::uint64_t in_use() const;

  // ---- addresses ----
  // Whether host address `p` lies in the current window at all; if it does, the heap offset of
  // [p, p + n) when that range lies inside one live block, or nullopt (a freed block, or a range
  // that runs past its block). Outside the window: nullopt and `inside` false.
  [[nodiscard]] std::optional<std::uint64_t> locate(const void* p, std::uint64_t n, bool& inside) const;
  // The live heap (any domain's) holding [p, p + n) in one live block (the replay log records
  // sandbox arguments as offsets with it, since the host address changes with a restart).
  [[nodiscard]] static std::optional<Found> locate_any(const void* p, std::uint64_t n);
  // Host address / window offset / extension address of heap offset `off` in the current window
  // (host: null when detached; ext: 0 when detached).
  [[nodiscard]] std::byte* host_at(std::uint64_t off) const;
  [[nodiscard]] std::uint64_t view_off(std::uint64_t off) const;
  [[nodiscard]] std::uint64_t ext_at(std::uint64_t off) const;
  // Copies between host memory and the heap, under the lock (the window cannot go meanwhile).
  // misuse when detached or when [off, off + n) is not inside one live block.
  [[nodiscard]] Result<void> copy_in(std::uint64_t off, const void* src, std::uint64_t n);
  [[nodiscard]] Result<void> copy_out(std::uint64_t off, void* dst, std::uint64_t n) const;

  // ---- windows (backends and the Supervisor) ----
  // `owner` (a domain) holds the bytes now, at `w`; with copy_bytes the current window's bytes
  // are copied there first (a restart carrying the heap over).
  void attach(const void* owner, Window w, bool copy_bytes);
  // The window goes away (its domain ends): no host address is handed out any more. A no-op
  // unless `owner` holds the current window.
  void detach(const void* owner) noexcept;

 private:
  explicit SandboxHeap(std::uint64_t size);
  [[nodiscard]] bool live_locked(std::uint64_t off, std::uint64_t n) const;

  const std::uint64_t size_;
  mutable std::mutex mu_;
  std::map<std::uint64_t, std::uint64_t> free_;  // offset -> size, coalesced
  std::map<std::uint64_t, std::uint64_t> live_;  // offset -> size
  std::uint64_t in_use_ = 0;
  const void* owner_ = nullptr;
  Window w_{};
  // w_.host, readable without the lock (locate's quick test); kNoWindow when detached.
  static constexpr std::uintptr_t kNoWindow = ~std::uintptr_t{0};
  std::atomic<std::uintptr_t> lo_{kNoWindow};
};

}  // namespace ward
