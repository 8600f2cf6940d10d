// Writing dirty blocks of one file back to the backing directory (shared by recovery and the
// cache's capacity, age and flush write-back).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "ward/core/error.h"
#include "ward/rio/region.h"

namespace ward::rio::detail {

// Checks a relative path for the backing directory: not empty, not absolute, no "." or ".."
// components, shorter than the file table allows.
[[nodiscard]] Result<void> check_relative_path(std::string_view p);

// Opens dir/path for writing back. `expect_existing`: the file must already exist (a missing
// file means someone removed it while the cache held dirty data: an error, the data stays in the
// region). Creates missing parent directories otherwise.
[[nodiscard]] Result<int> open_backing(const std::filesystem::path& dir, const std::string& path, bool create);

// One block's bytes and where they go in the backing file.
struct BlockWrite {
  std::uint64_t offset;
  std::span<const std::byte> bytes;
};

// Writes `blocks` to `fd` and sets the file's size to `size`; with `sync` it also fdatasyncs, and
// when it returns success the bytes survive a power loss; without, they survive what the page
// cache survives (a crash of the program). Touches nothing else (the cache calls it without its
// lock held).
[[nodiscard]] Result<void> write_blocks(int fd, const std::string& path, std::uint64_t size,
                                        std::span<const BlockWrite> blocks, bool sync = true);

// Test seam: when set, the cache's write-back calls it after write_blocks and before it marks
// anything clean, without the cache lock held (set it before opening the cache).
inline std::function<void()> after_writeback_io;
// Test seam: when set, write_blocks calls it with the path of each file it fdatasyncs.
inline std::function<void(const std::string&)> on_data_sync;
// Test seam: when set, the cache's read-through (a read of a block it does not hold, or a partial
// write to one) calls it just after its pread, without the cache lock held (set it before
// opening the cache).
inline std::function<void()> during_read_through;
// Test seam: called (with the cache lock held: it must not call into the cache) when a write starts
// waiting for another thread's read-through of its block.
inline std::function<void()> on_read_through_wait;

// Test seam: called by a synced region's flush that runs without the cache lock (fsync, the
// write-back thread making room) in the flushing thread, with no cache lock held: with 0 after
// it took its pages and stages and before its msync, with 1 after the msync and before it
// records the result. It may use the cache from other threads, not from its own (the flushing
// thread holds the write-back lock).
inline std::function<void(int step)> during_unlocked_flush;
// Test seam: called by the write-back thread around each piece of work (true before, false
// after), with the write-back lock held and the cache lock not held.
inline std::function<void(bool start)> around_background_work;
// Test seam: when set, a write-back round picks one block per hold of the cache lock while it
// chooses what to write, and calls this between the holds: with the write-back lock held and the
// cache lock not held, in the round's thread. Other threads may use the cache meanwhile.
inline std::function<void()> between_picks;
// Test seam: called (with the cache lock held: it must not call into the cache) when a write
// starts waiting for a free slot.
inline std::function<void()> on_slot_wait;

// Writes `slots` (dirty blocks of file `path`, logical size `size`) to `fd`, sets the file's size
// and fdatasyncs it; then marks the slots clean. On any error nothing is marked clean.
[[nodiscard]] Result<void> write_back(Region& r, int fd, const std::string& path, std::uint64_t size,
                                      const std::vector<std::uint32_t>& slots);

// fsyncs a directory, so that a file created or removed in it survives a power cut.
[[nodiscard]] Result<void> sync_dir(const std::filesystem::path& dir);

}  // namespace ward::rio::detail
