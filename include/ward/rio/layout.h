// The persistent layout of a Rio region: what survives the crash of the program that owns it.
//
//   [Header: 4 KiB][file table: nfiles x 256 B][registry: nblocks x 64 B][data: nblocks x block]
//
// Crash atomicity: every update that makes something visible is one aligned 64-bit store (the
// `word` of FileEntry and Entry, FileEntry::size_word), so a killed owner leaves the old or the
// new value, never half of one. The header's mutable state is written to the older of two
// copies, each with its own checksum, so a kill in the middle leaves the other copy intact.
//
// Checksums over every byte recovery trusts (recovery reports damage and quarantines it; it never
// acts on a value that fails its check):
//   * a block's data and what the entry says it is (file, generation, block, length, sequence):
//     Entry::checksum, XXH3 (see block_checksum());
//   * each 64-bit word's own fields (state, sequence / generation, size): a CRC-12 in its low
//     12 bits, so a state flip (dirty -> clean, say) or a flipped sequence bit is seen — CRC-12
//     catches every error burst up to 12 bits long, so every single flipped bit or byte;
//   * a file entry's path and path length: FileEntry::path_check, XXH3 seeded with the generation;
//   * the header: geometry_checksum (immutable part), State::checksum (each mutable copy).
// An all-zero word is "free" (a fresh table is zeroes) and is valid.
//
// Any change to these structures must bump kVersion.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace ward::rio::layout {

inline constexpr std::uint64_t kMagic = 0x314f495244524157ull;  // "WARDRIO1"
inline constexpr std::uint32_t kVersion = 2;
inline constexpr std::size_t kHeaderSize = 4096;
inline constexpr std::size_t kPathMax = 224;
inline constexpr std::uint64_t kMaxSeq = (1ull << 48) - 1;   // sequence / generation field width
inline constexpr std::uint64_t kMaxFileSize = (1ull << 52) - 1;

// CRC-12 (x^12+x^11+x^3+x^2+x+1) of the low `bits` bits of v, from a non-zero start so that the
// check of an all-zero payload is not zero.
inline constexpr std::uint64_t crc12(std::uint64_t v, int bits) {
  std::uint64_t r = 0xfff;
  for (int i = bits - 1; i >= 0; --i) {
    const std::uint64_t in = ((v >> i) & 1) ^ ((r >> 11) & 1);
    r = (r << 1) & 0xfff;
    if (in) r ^= 0x80f;
  }
  return r;
}
// A checked word: payload (52 bits) << 12 | crc12(payload). 0 is the free word and valid.
inline constexpr std::uint64_t checked(std::uint64_t payload) {
  return payload == 0 ? 0 : (payload << 12) | crc12(payload, 52);
}
inline constexpr bool check_ok(std::uint64_t w) { return w == 0 || (w & 0xfff) == crc12(w >> 12, 52); }

// Block states (4 bits in Entry::word; the sequence number is the upper 48).
enum State : std::uint8_t {
  kFree = 0,
  kDirty = 1,        // newer than the backing file: must be written back
  kClean = 2,        // the backing file has these bytes (durably)
  kQuarantined = 3,  // failed a check at recovery: kept for inspection, never written back
};

// Entry::word = checked(seq << 4 | state). Free is always 0.
inline constexpr std::uint64_t make_word(std::uint64_t seq, State s) { return s == kFree ? 0 : checked((seq << 4) | s); }
inline constexpr State word_state(std::uint64_t w) { return static_cast<State>((w >> 12) & 0xf); }
inline constexpr std::uint64_t word_seq(std::uint64_t w) { return w >> 16; }
inline constexpr bool word_ok(std::uint64_t w) { return check_ok(w); }

// Every single-bit error in a word is detected (the free word's neighbours included).
inline constexpr bool single_flips_detected() {
  for (std::uint64_t w : {std::uint64_t{0}, make_word(1, kDirty), make_word(kMaxSeq, kClean)})
    for (int b = 0; b < 64; ++b)
      if (check_ok(w ^ (1ull << b))) return false;
  return true;
}
static_assert(single_flips_detected());

// The header's mutable state, kept twice: updates go to the copy with the lower `counter`
// (written whole, checksum last); readers take the valid copy with the higher counter.
struct HeaderState {
  std::uint64_t counter;     // which copy is newer
  std::uint64_t generation;  // bumped by every open
  std::uint64_t next_seq;    // sequence numbers for block versions (also recomputed at open)
  std::uint64_t synced_seq;  // synced owners: every version with a lower seq was durable at its last flush
  std::uint32_t clean;       // 1: closed cleanly, nothing dirty
  std::uint32_t owner_pid;   // last opener (advisory; the lock is flock)
  std::uint32_t synced;      // 1: the owner flushed (Durability::synced), so synced_seq means something
  std::uint32_t reserved0;
  char backing_dir[1024];    // absolute path of the cache's backing directory
  std::uint64_t boot_id[2];  // the owner's boot (a hash of the kernel's boot_id): was there a reboot since?
  std::uint8_t reserved[56];
  std::uint64_t checksum;    // XXH3 of everything above
};
static_assert(sizeof(HeaderState) == 1152);

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
  std::uint8_t reserved1[56];
  HeaderState state[2];
  std::uint8_t reserved[kHeaderSize - 128 - 2 * sizeof(HeaderState)];
};
static_assert(sizeof(Header) == kHeaderSize);
static_assert(offsetof(Header, geometry_checksum) == 64);
static_assert(offsetof(Header, state) == 128);

// File entry states (4 bits in FileEntry::word; the generation is the upper 48).
enum FileState : std::uint8_t {
  kFileFree = 0,
  kFileUsed = 1,
  kFileUnlinking = 2,  // unlink in progress: recovery finishes it (removes the backing file, frees all)
};

// One backing file the cache knows. Reusing a slot for another file bumps the generation, which
// orphans any block still naming the old one. Order of a (re)use: path, path_len, path_check,
// size_word, then word.
struct FileEntry {
  std::atomic<std::uint64_t> word;       // checked(gen << 4 | FileState)
  std::atomic<std::uint64_t> size_word;  // size << 12 | (crc12(size) ^ low 12 bits of gen): logical size
  std::uint64_t path_check;              // XXH3(path[0..path_len)) seeded with gen (see path_checksum())
  std::uint32_t path_len;
  std::uint32_t reserved0;
  char path[kPathMax];                   // relative to the backing directory
};
static_assert(sizeof(FileEntry) == 256);
static_assert(offsetof(FileEntry, path) == 24 + 8);

inline constexpr std::uint64_t make_file_word(std::uint64_t gen, FileState s) {
  return gen == 0 && s == kFileFree ? 0 : checked((gen << 4) | s);
}
inline constexpr FileState file_state(std::uint64_t w) { return static_cast<FileState>((w >> 12) & 0xf); }
inline constexpr bool file_used(std::uint64_t w) { return file_state(w) == kFileUsed; }
inline constexpr std::uint64_t file_gen(std::uint64_t w) { return w >> 16; }
inline constexpr std::uint64_t make_size_word(std::uint64_t size, std::uint64_t gen) {
  return (size << 12) | (crc12(size, 52) ^ (gen & 0xfff));
}
inline constexpr std::uint64_t size_of(std::uint64_t w) { return w >> 12; }
inline constexpr bool size_ok(std::uint64_t w, std::uint64_t gen) { return (w & 0xfff) == (crc12(w >> 12, 52) ^ (gen & 0xfff)); }

// The registry entry of one data block slot.
struct alignas(64) Entry {
  std::atomic<std::uint64_t> word;  // make_word(seq, state): the publishing store
  std::uint32_t file;               // file table index
  std::uint32_t file_gen;           // that file entry's generation (low 32 bits)
  std::uint64_t block;              // block index within the file
  std::uint32_t len;                // valid bytes from the start of the block
  std::uint32_t reserved0;
  std::uint64_t checksum;           // see block_checksum()
  std::uint64_t stamp_ns;           // CLOCK_REALTIME when written (age-based write-back; not trusted)
  std::uint64_t reserved1[2];
};
static_assert(sizeof(Entry) == 64);
static_assert(offsetof(Entry, checksum) == 32);

}  // namespace ward::rio::layout
