// rio::Cache: a file cache over a backing directory whose dirty data lives in a Region, so it
// survives a crash of the program (Rio's warm reboot, in user space).
//
//   auto cache = rio::Cache::open({.backing_dir = "data"});  // region: /dev/shm/ward-<uid>/rio-<hash>
//   int fd = *(*cache)->open_file("log.txt", rio::kCreate);
//   (*cache)->write(fd, bytes, offset);   // returns once the data is safe in the region
//   (*cache)->fsync(fd);                  // rio mode: no disk write at all
//
// Modes (for comparison, and for users who want them):
//   * rio (default): write() copies into the region (shadowed, checksummed, published with one
//     atomic store) and returns; fsync() is free; write-back happens for capacity (evict clean
//     blocks first; a write with no free or clean slot waits up to writeback_wait for the
//     background thread to clean some) and for age, in the background thread, never under the
//     cache lock (docs/rio.md, "Write-back and locking"). Reads of blocks the cache does not hold,
//     partial writes to them and opening backing files do their I/O without the lock too; a
//     write of a block another write is reading through waits for it (deadline writeback_wait).
//     A crashed owner's dirty blocks are written back by the next open.
//   * write_through: every write() goes to the backing file followed by fdatasync (the baseline
//     Rio beat). No region.
//   * unsafe_write_back: write() goes to the backing file's page cache with no sync: no
//     guarantee beyond the kernel's own.
//
// Warm reboot: opening a region its previous owner did not close cleanly runs recovery first
// (see recover()). Thread safety: every member function may be called from any thread (one
// internal lock).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ward/core/error.h"
#include "ward/rio/region.h"

namespace ward::rio {

enum class Mode : std::uint8_t { rio, write_through, unsafe_write_back };
[[nodiscard]] std::string_view to_string(Mode m) noexcept;

inline constexpr int kCreate = 1;     // open_file: create the file if it does not exist
inline constexpr int kTruncate = 2;   // open_file: truncate to 0

struct CacheOptions {
  std::filesystem::path backing_dir;
  RegionOptions region;  // region.path defaults to default_region_path(backing_dir)
  Mode mode = Mode::rio;
  // Dirty blocks older than this are written back by the background thread; 0 disables it.
  // (Capacity write-back runs regardless.)
  std::chrono::milliseconds writeback_age{std::chrono::seconds(30)};
  // How long a write waits for write-back to free a slot when the cache is full of dirty
  // blocks, or for another write's read-through of its block; then it fails with Errc::limit
  // and is not done.
  std::chrono::milliseconds writeback_wait{std::chrono::seconds(10)};
};

// What recovery found and did. `lost` is true when acknowledged data could not be kept, or
// damage was found: a block, a file table entry or the header state failed its checks (reported
// and quarantined, never acted on: no block goes into a file its entry does not verifiably name). Blocks whose backing file could not be
// written stay dirty in the region and are listed in `unwritable`; nothing of theirs is lost.
struct RecoveryReport {
  bool needed = false;              // the previous owner had not closed cleanly
  std::uint64_t generation = 0;
  std::uint32_t blocks_in_use = 0;  // published blocks found
  std::uint32_t written_back = 0;   // dirty blocks written to their files (and synced)
  std::uint32_t stale_freed = 0;    // older versions, orphans, blocks past end of file
  std::uint32_t files = 0;          // files that received data
  // Synced regions after a reboot: versions written after the last flush whose pages a power cut
  // wrote only in part. Never acknowledged as durable; dropped, their predecessors kept.
  std::uint32_t torn_unsynced = 0;
  std::uint32_t unlinks_finished = 0;  // unlinks the crash interrupted, completed
  struct Corrupt {
    std::uint32_t slot;
    std::string file;
    std::uint64_t block;
    std::string reason;
  };
  std::vector<Corrupt> corrupt;
  std::vector<std::string> unwritable;  // "path: reason"
  bool lost() const { return !corrupt.empty(); }
  std::string summary() const;
};

// Warm reboot of an open region: verify every entry, keep the newest valid version of each
// block, free older versions and orphans, quarantine corrupt entries (reported, never written
// back), write every dirty block to its file under `backing_dir` (then fdatasync and set the
// file's size), and mark the region clean if nothing is left dirty. Crash-safe and idempotent:
// each step can be repeated; killing it midway and running it again ends in the same state.
[[nodiscard]] Result<RecoveryReport> recover(Region& region, const std::filesystem::path& backing_dir);

struct CacheStats {
  std::uint64_t writes = 0, reads = 0, read_hits = 0, fsyncs = 0, written_back = 0, evicted = 0;
  std::uint64_t slot_waits = 0;  // writes that found no free or clean slot and waited for write-back
  std::uint64_t load_waits = 0;  // writes that waited for another thread's read-through of their block
  std::uint32_t blocks_total = 0, blocks_dirty = 0, blocks_clean = 0, blocks_free = 0;
};

class Cache {
 public:
  // Opens the backing directory (which must exist) and the region (created if missing); runs
  // recovery if the previous owner crashed (`report`, if given, receives what it did).
  [[nodiscard]] static Result<std::unique_ptr<Cache>> open(CacheOptions opt, RecoveryReport* report = nullptr);
  // A clean close: writes everything back, syncs, marks the region clean.
  ~Cache();

  // Paths are relative to the backing directory ("a/b.txt"; no "..", no absolute paths).
  [[nodiscard]] Result<int> open_file(std::string_view path, int flags = kCreate);
  // Returns n once the bytes are safe (rio: in the region; write_through: on disk).
  [[nodiscard]] Result<std::size_t> write(int fd, std::span<const std::byte> data, std::uint64_t offset);
  // Returns the bytes read (short at end of file).
  [[nodiscard]] Result<std::size_t> read(int fd, std::span<std::byte> out, std::uint64_t offset);
  [[nodiscard]] Result<void> fsync(int fd);
  [[nodiscard]] Result<void> truncate(int fd, std::uint64_t size);
  [[nodiscard]] Result<std::uint64_t> size(int fd);
  [[nodiscard]] Result<void> close(int fd);
  [[nodiscard]] Result<void> unlink(std::string_view path);
  // Writes every dirty block back (synced). Errors name the files that could not be written;
  // their blocks stay dirty in the region.
  [[nodiscard]] Result<void> flush();
  // Closes without writing back (simulates a crash for tests: the region stays "not clean").
  void abandon();

  [[nodiscard]] CacheStats stats() const;
  [[nodiscard]] Mode mode() const;
  [[nodiscard]] Region* region();  // null in write_through / unsafe_write_back modes

  struct Impl;

 private:
  explicit Cache(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The default region path for a backing directory: <shared>/ward-<euid>/rio-<16 hex digits of a
// hash of its absolute path>. Cache::open creates ward-<euid> with mode 0700 and refuses it if it
// exists with another owner, group/other access, or as a link (see src/rio/private_path.h).
[[nodiscard]] std::filesystem::path default_region_path(const std::filesystem::path& backing_dir,
                                                        const std::filesystem::path& shared = "/dev/shm");

}  // namespace ward::rio
