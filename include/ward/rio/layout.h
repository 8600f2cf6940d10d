// The persistent layout of a Rio region: what survives the crash of the program that owns it.
//
//   [Header: 4 KiB][file table: nfiles x 256 B][registry: nblocks x 64 B][data: nblocks x block]
//
// Every field that makes an update visible is one aligned 64-bit word written with a single
// atomic store (`word` in FileEntry and Entry): a crash at any instant leaves the old or the new
// version of a block, never a torn one. The checksum of a block covers its data and everything
// that says what the data is (file, generation, block index, length, sequence), so an entry whose
// fields were half-written, or whose data was scribbled on, is recognised as corrupt.
//
// Any change to these structures must bump kVersion.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace ward::rio::layout {

inline constexpr std::uint64_t kMagic = 0x314f495244524157ull;  // "WARDRIO1"
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 4096;
inline constexpr std::size_t kPathMax = 224;

// Block states (low 8 bits of Entry::word; the sequence number is the upper 56).
enum State : std::uint8_t {
  kFree = 0,
  kDirty = 1,        // newer than the backing file: must be written back
  kClean = 2,        // the backing file has these bytes (durably)
  kQuarantined = 3,  // failed its checksum at recovery: kept for inspection, never written back
};

inline constexpr std::uint64_t make_word(std::uint64_t seq, State s) { return (seq << 8) | s; }
inline constexpr State word_state(std::uint64_t w) { return static_cast<State>(w & 0xff); }
inline constexpr std::uint64_t word_seq(std::uint64_t w) { return w >> 8; }

struct Header {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t header_size;
  std::uint32_t block_size;
  std::uint32_t nblocks;
  std::uint32_t nfiles;
  std::uint32_t reserved0;
  std::uint64_t files_off;
  std::uint64_t registry_off;
  std::uint64_t data_off;
  std::uint64_t region_size;
  std::uint64_t geometry_checksum;  // XXH3 of the bytes above
  // Mutable state.
  std::atomic<std::uint64_t> generation;  // bumped by every open
  std::atomic<std::uint32_t> clean;       // 1: closed cleanly, nothing dirty
  std::atomic<std::uint32_t> owner_pid;   // last opener (advisory; the lock is flock)
  std::atomic<std::uint64_t> next_seq;    // sequence numbers for block versions
  char backing_dir[1024];                 // absolute path of the cache's backing directory
  std::uint8_t reserved[kHeaderSize - 96 - 1024];
};
static_assert(sizeof(Header) == kHeaderSize);
static_assert(offsetof(Header, geometry_checksum) == 64);
static_assert(offsetof(Header, generation) == 72);
static_assert(offsetof(Header, next_seq) == 88);

// One backing file the cache knows. `word` = generation << 8 | used; reusing a slot for another
// file bumps the generation, which orphans any block still naming the old one.
struct FileEntry {
  std::atomic<std::uint64_t> word;
  std::atomic<std::uint64_t> size;  // logical size; data beyond it is not part of the file
  std::uint32_t path_len;
  std::uint32_t reserved0;
  std::uint64_t reserved1;
  char path[kPathMax];              // relative to the backing directory
};
static_assert(sizeof(FileEntry) == 256);
static_assert(offsetof(FileEntry, path) == 32);

inline constexpr std::uint64_t make_file_word(std::uint64_t gen, bool used) { return (gen << 8) | (used ? 1 : 0); }
inline constexpr bool file_used(std::uint64_t w) { return (w & 0xff) == 1; }
inline constexpr std::uint64_t file_gen(std::uint64_t w) { return w >> 8; }

// The registry entry of one data block slot.
struct alignas(64) Entry {
  std::atomic<std::uint64_t> word;  // seq << 8 | state: the publishing store
  std::uint32_t file;               // file table index
  std::uint32_t file_gen;           // that file entry's generation
  std::uint64_t block;              // block index within the file
  std::uint32_t len;                // valid bytes from the start of the block
  std::uint32_t reserved0;
  std::uint64_t checksum;           // see block_checksum()
  std::uint64_t stamp_ns;           // CLOCK_REALTIME when written (age-based write-back)
  std::uint64_t reserved1[2];
};
static_assert(sizeof(Entry) == 64);
static_assert(offsetof(Entry, checksum) == 32);

}  // namespace ward::rio::layout
