// rio::Region: a file mapped shared that holds cached file data across crashes of the program
// that owns it (see layout.h for what is in it).
//
// Where the region lives decides what it survives — ward says so plainly:
//   * tmpfs (the default: /dev/shm/ward-<uid>/): survives any crash of the program, including SIGKILL; not a
//     power cut or a kernel crash.
//   * a regular file on a disk file system, with Durability::synced: flush() makes everything
//     written so far survive a power cut too (it msyncs the pages written since the last flush).
//     Between flushes the kernel may write any subset of those pages back, in any order; the
//     write path is ordered so that any such subset still recovers everything the last flush
//     covered (see retire(): a superseded version stays intact until its successor is durable).
//   * a DAX file on persistent memory: the same as synced, with flushes that are cache-line
//     write-backs rather than page writes (the kernel's msync on DAX).
//
// Protection: the program's view of the region is read-only, except inside the cache's own write
// path, so a stray store from anywhere else in the program faults (fail-stop) instead of
// corrupting file data. Rio flipped page-table bits inside the kernel for free; user space has
// these choices (measured by `ward bench rio`):
//   * mprotect: Rio's method — mprotect RW around each update, back to RO after: two system
//     calls and a TLB shootdown per write.
//   * alias: the program's mapping stays read-only forever; the cache writes through a second
//     mapping of the same memory at an address held only by the Region object. No system call
//     per write. A stray store through the read-only view faults; one would have to land inside
//     the hidden alias by chance to do harm.
//   * pkeys: memory protection keys (a per-thread register flip, no system call); only where the
//     CPU has them — these machines do not, and opening with it then fails saying so.
//   * off: no protection (for comparison).
//
// Who may plant a region (another local user, in a shared directory such as /dev/shm): nobody.
// open() never follows a symlink at `path`; it reopens only a regular file owned by the caller,
// with no group/other permission bits and one link, in a directory owned by the caller or root
// that others cannot write unless it is sticky; anything else is refused (Errc::misuse, the
// detail names the path and what is wrong). A new region is built in a file created exclusively
// beside `path` and renamed to `path` only if nothing is there, so a path never names a
// half-built region, and an existing empty file is refused (load_failed), not turned into one.
// Creation reserves every page (posix_fallocate, tmpfs too): a file system without room gives
// Errc::limit at open instead of SIGBUS at the first store into an unbacked page.
//
// Ownership: one process owns a region at a time (an exclusive flock held while open); a second
// opener gets Errc::misuse "in use". Thread safety: the Region's mutators are not synchronized;
// the Cache serializes them.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ward/core/error.h"
#include "ward/rio/layout.h"

namespace ward::rio {

enum class Protection : std::uint8_t { off, mprotect, alias, pkeys };
enum class Durability : std::uint8_t { program_crash, synced };

[[nodiscard]] std::string_view to_string(Protection p) noexcept;
[[nodiscard]] Result<Protection> parse_protection(std::string_view s);
// The default protection: the best one measured (see docs/results.md).
inline constexpr Protection kDefaultProtection = Protection::alias;
// True if this CPU and kernel support memory protection keys.
[[nodiscard]] bool pkeys_available();

// The two views of a region file that Rio's protected structures (Region, Heap) share: `ro`, the
// program's view (read-only unless protection is off), and `rw`, the write path's view: for
// Protection::alias a second shared mapping at an address only the caller holds, otherwise ro
// itself (mprotect and pkeys open their write windows over ro). unmap_views undoes it.
struct Views {
  std::byte* ro = nullptr;
  std::byte* rw = nullptr;
};
[[nodiscard]] Result<Views> map_views(int fd, std::uint64_t size, Protection p);
void unmap_views(Views v, std::uint64_t size);

struct RegionOptions {
  std::filesystem::path path;
  std::uint64_t size = 64ull << 20;  // used when creating
  std::uint32_t block_size = 4096;   // used when creating; a power of two, 512 .. 1 MiB
  std::uint32_t files = 256;         // file table entries, used when creating
  Protection protection = kDefaultProtection;
  Durability durability = Durability::program_crash;
  bool create = true;                // create the region if no file exists at `path`
};

class Region {
 public:
  // Opens (or creates) and locks the region. Errors: misuse (in use by another process, too
  // small, bad options, not ours or not private: see above), limit (no room to create it), load_failed (not a region, wrong version, truncated, damaged geometry,
  // cannot open or map the file).
  [[nodiscard]] static Result<std::unique_ptr<Region>> open(const RegionOptions& opt);
  ~Region();
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  // ---- read-only views (through the protected mapping) ----------------------------------------
  [[nodiscard]] const layout::Header& header() const { return *reinterpret_cast<const layout::Header*>(ro_); }
  [[nodiscard]] const layout::FileEntry& file(std::uint32_t i) const;
  [[nodiscard]] const layout::Entry& entry(std::uint32_t slot) const;
  [[nodiscard]] const std::byte* block(std::uint32_t slot) const;
  [[nodiscard]] std::uint32_t block_size() const { return header().block_size; }
  [[nodiscard]] std::uint32_t nblocks() const { return header().nblocks; }
  [[nodiscard]] std::uint32_t nfiles() const { return header().nfiles; }
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] Protection protection() const { return prot_; }
  [[nodiscard]] Durability durability() const { return dur_; }
  // Whether the previous owner closed it cleanly (read at open, before this owner marked it busy).
  [[nodiscard]] bool was_clean() const { return was_clean_; }
  // What the previous owner's header state said (read at open). `damaged`: neither copy of the
  // header's mutable state passed its checksum (recovery reports it; the backing directory, the
  // clean flag and synced_seq are then unknown and not used).
  struct Previous {
    bool synced = false;          // it flushed (Durability::synced)
    std::uint64_t synced_seq = 0;  // versions below this were durable at its last flush
    bool damaged = false;
    bool rebooted = false;         // the machine was rebooted since (a power cut may have come in between)
  };
  [[nodiscard]] const Previous& previous() const { return prev_; }
  [[nodiscard]] std::uint64_t generation() const { return st_.generation; }
  [[nodiscard]] bool created() const { return created_; }
  // The read-only mapping's bounds (tests aim stray stores at it).
  [[nodiscard]] std::span<const std::byte> mapping() const { return {ro_, size_}; }
  // Checks a published entry's checksum against its data.
  [[nodiscard]] bool entry_valid(std::uint32_t slot) const;
  // A file entry's checks (word, size word, path checksum). Free entries only need a valid word.
  [[nodiscard]] bool file_valid(std::uint32_t i) const;
  [[nodiscard]] std::uint64_t file_size(std::uint32_t i) const;
  [[nodiscard]] std::string file_path(std::uint32_t i) const;

  // ---- the write path: the only code that can store into the region --------------------------
  // Every store below survives a crash of the program as soon as it returns (the region is shared
  // memory). A power cut: only what the last successful flush() covered (synced regions).
  //
  // Writes a new version of a block into free slot `slot` and publishes it dirty with sequence
  // `seq`. Order: data, then the entry's fields and checksum, then one atomic store of the word.
  void write_block(std::uint32_t slot, std::uint32_t file, std::uint32_t file_gen, std::uint64_t block,
                   std::span<const std::byte> data, std::uint64_t seq);
  // Changes a published entry's state (dirty -> clean, anything -> free/quarantined), keeping seq.
  void set_state(std::uint32_t slot, layout::State s);
  // Gives up a slot whose version was superseded or dropped. program_crash regions: freed at once
  // (returns true: reusable now). Synced regions: the entry stays as it is until the next flush
  // has made whatever superseded it durable, is then marked free, and becomes reusable after the
  // flush after that (returns false; take_reusable() hands it out then). So a power cut between
  // flushes always finds the version the last flush covered, and never a reused slot whose free
  // mark did not reach the disk.
  [[nodiscard]] bool retire(std::uint32_t slot);
  // Slots that became reusable at the flushes since the last call.
  [[nodiscard]] std::vector<std::uint32_t> take_reusable();
  // Flushes still needed before every retired slot is reusable (0, 1 or 2).
  [[nodiscard]] int flushes_pending() const;
  // Slots retired or marked free and not yet reusable (outside a flush).
  [[nodiscard]] std::size_t slots_in_flight() const { return retired_.size() + freeing_.size(); }
  // File table. Each is crash-atomic (one checked word is the publishing store).
  void set_file(std::uint32_t i, std::uint64_t gen, std::string_view path, std::uint64_t size);
  void set_file_state(std::uint32_t i, layout::FileState s);
  void set_file_size(std::uint32_t i, std::uint64_t size);
  // Records the backing directory in the header, so `ward rio recover REGION` finds it.
  void set_backing_dir(std::string_view dir);
  [[nodiscard]] std::string backing_dir() const;
  // A fresh sequence number for a block version (monotonic across crashes: see open).
  [[nodiscard]] std::uint64_t next_seq();
  void set_clean(bool clean);
  // Durability::synced: makes everything written so far survive a power cut — msyncs the pages
  // written since the last flush, then records in the header that every version so far is durable
  // (and msyncs that page). No-op for program_crash regions. All four steps below, in a row: for
  // an owner that holds its lock throughout.
  [[nodiscard]] Result<void> flush();

  // The same flush split so that its disk I/O runs without the owner's lock (the Cache does this:
  // docs/rio.md, "Synced regions: flushes without the lock"). One flush at a time: the owner must
  // not begin a flush (or call flush()) until the previous ticket has been ended.
  //   1. begin_flush (lock held): takes the list of pages stored to so far, the sequence number,
  //      and the retired and freeing stages this flush will settle. A page stored to after this,
  //      even one on the taken list (the msync may or may not catch that store), goes on the list
  //      again: the next flush writes it.
  //   2. sync_pages (lock not held): msyncs the taken pages. Touches no mutable Region state.
  //   3. end_flush (lock held): on success records synced_seq = the taken sequence number in the
  //      header state and advances only the taken stages (taken-retired -> marked free, taken-
  //      freeing -> reusable); slots retired after step 1 wait for the next flush, since their
  //      successors may not be on disk. On failure it puts the pages and stages back.
  //   4. sync_header (lock not held): msyncs the header pages. Why not under the lock: the stages
  //      advanced in step 3 rest on step 2 alone (the successors and the free marks are durable);
  //      synced_seq only tells recovery which checksum failures are debris of a torn unsynced
  //      write, and a header that still says an older synced_seq classifies fewer versions as
  //      durable, never more. A flush's caller (fsync) returns only after this step.
  struct FlushTicket {
    bool active = false;                        // false: program_crash region, nothing to do
    std::vector<std::uint64_t> pages;           // page indexes to msync
    std::uint64_t seq = 0;                      // every version below it is in `pages` or was durable already
    std::vector<std::uint32_t> retired, freeing;
  };
  [[nodiscard]] FlushTicket begin_flush();
  [[nodiscard]] Result<void> sync_pages(const FlushTicket& t) const;
  void end_flush(FlushTicket& t, bool synced);
  [[nodiscard]] Result<void> sync_header() const;
  // Durability::synced: msyncs the whole region (recovery starts with it: a crashed owner's pages
  // may still be only in the page cache, and recovery must not free a version whose successor
  // is not on disk).
  [[nodiscard]] Result<void> sync_all();
  // For the power-loss simulator, with the owner's lock held: called as every flush takes what it
  // will make durable (durable = false; `pages`: the pages it will msync, in units of the system
  // page size) and when those are on disk (true; `pages` empty), before the header state and the
  // stages move.
  using FlushObserver = std::function<void(bool durable, std::span<const std::uint64_t> pages)>;
  void set_flush_observer(FlushObserver f) { flush_observer_ = std::move(f); }

 private:
  Region() = default;
  // Runs `f` with write access to [off, off + len) of the region (one range per call; mprotect
  // mode flips exactly the pages it covers).
  template <class F>
  void with_write(std::uint64_t off, std::uint64_t len, F&& f);
  std::byte* rw(std::uint64_t off) const { return rw_ + off; }
  // Writes the header state (st_) to the older copy.
  void store_state();
  [[nodiscard]] Result<void> msync_pages(std::uint64_t first, std::uint64_t count) const;

  std::filesystem::path path_;
  int fd_ = -1;
  std::byte* ro_ = nullptr;  // what the program sees
  std::byte* rw_ = nullptr;  // the write path's view (the hidden alias, or ro_)
  std::uint64_t size_ = 0;
  Protection prot_ = Protection::off;
  Durability dur_ = Durability::program_crash;
  int pkey_ = -1;
  int cur_ = -1;  // which header state copy holds st_ (-1: neither was valid)
  std::uint64_t seq_ = 1;
  bool was_clean_ = true;
  bool created_ = false;
  layout::HeaderState st_{};  // this owner's header state (authoritative while it holds the lock)
  Previous prev_;
  // Synced regions: pages stored to since the last flush (one flag per page, and their list).
  std::vector<std::uint8_t> page_dirty_;
  std::vector<std::uint64_t> dirty_pages_;
  // Synced regions: slots waiting for a flush (retired -> marked free -> reusable).
  std::vector<std::uint32_t> retired_, freeing_, reusable_;
  FlushObserver flush_observer_;
};

// What `ward rio inspect` shows: read without taking ownership (the region may be in use).
struct Inspection {
  std::uint64_t region_size = 0, generation = 0;
  std::uint32_t version = 0, block_size = 0, nblocks = 0, nfiles = 0;
  bool clean = false;
  bool in_use = false;  // another process holds the owner lock
  std::uint32_t owner_pid = 0;
  std::string backing_dir;
  std::uint32_t free = 0, dirty = 0, clean_blocks = 0, quarantined = 0;
  struct File {
    std::string path;
    std::uint64_t size = 0;
    std::uint32_t dirty = 0, clean = 0;
  };
  std::vector<File> files;
  struct Bad {
    std::uint32_t slot;
    std::string file;
    std::uint64_t block;
    std::string reason;
  };
  std::vector<Bad> corrupt;  // anything failing its checks (header state, file entries, blocks), quarantined blocks
  // Synced regions: versions written after the last flush that a power cut tore (never
  // acknowledged; recovery drops them and keeps their predecessors).
  std::uint32_t torn_unsynced = 0;
};
[[nodiscard]] Result<Inspection> inspect(const std::filesystem::path& path);

// XXH3 of a copy of the header's mutable state (all of it before the checksum field).
[[nodiscard]] std::uint64_t header_state_checksum(const layout::HeaderState& st);

// XXH3 of a file entry's path, seeded with its generation.
[[nodiscard]] std::uint64_t path_checksum(std::string_view path, std::uint64_t gen);

// XXH3 over the block's bytes, seeded with what the entry says they are.
[[nodiscard]] std::uint64_t block_checksum(std::span<const std::byte> data, std::uint32_t file, std::uint32_t file_gen,
                                           std::uint64_t block, std::uint64_t seq);

}  // namespace ward::rio
