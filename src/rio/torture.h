// The crash test behind `ward rio torture` and the crash tests: a writer process does random
// writes (1 byte to many blocks, overlapping, several files, truncates, fsyncs) through a Cache
// and is killed with SIGKILL at random moments; after each kill, recovery runs and every write
// acknowledged before the kill is verified byte for byte, and no block may be torn.
//
// The writer (the `ward-rio-writer` executable) logs each operation in shared memory before it
// starts ("begun") and after it returns ("acked"); the parent replays the acknowledged ones onto
// its own model of every file. The one operation in flight at the kill may have happened or
// not, block by block: each block it touches must equal either its old or its new version.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "ward/core/error.h"
#include "ward/rio/region.h"

namespace ward::rio {

struct TortureOptions {
  std::filesystem::path work_dir;   // backing files go to work_dir/backing; the caller makes it private
  std::filesystem::path region;     // default: in a new private dir /dev/shm/ward-torture-XXXXXX (removed after)
  std::filesystem::path writer;     // the ward-rio-writer executable
  int kills = 100;
  int files = 4;
  std::uint32_t seed = 1;
  std::uint64_t region_size = 4ull << 20;  // small, so capacity write-back happens too
  Protection protection = kDefaultProtection;
  std::uint32_t max_delay_us = 20000;       // kill after a random delay up to this
  std::function<void(int kill, const std::string& line)> progress;  // called after each kill
  // Protection test: the writer makes a stray store into the region after some writes and the
  // run ends when the writer does (killed by SIGSEGV if protection caught it), not by SIGKILL.
  bool stray = false;
};

struct TortureResult {
  int kills = 0;
  std::uint64_t ops_acked = 0;        // acknowledged operations, all verified
  std::uint64_t bytes_verified = 0;   // file bytes compared with the model after each recovery
  std::uint64_t in_flight_applied = 0, in_flight_dropped = 0;  // the op at each kill: blocks
  std::uint64_t written_back = 0;     // dirty blocks recovery wrote back, over all kills
  std::uint64_t lost = 0;             // acknowledged bytes that did not verify (must be 0)
  std::uint64_t torn_blocks = 0;      // must be 0
  std::vector<std::string> problems;  // first few mismatches, for the report
  int last_writer_status = 0;         // waitpid status of the last writer
  bool ok() const { return lost == 0 && torn_blocks == 0 && problems.empty(); }
};

[[nodiscard]] Result<TortureResult> torture(const TortureOptions& opt);

// Shared-memory operation log between the writer and the parent.
struct TortureOp {
  std::uint32_t kind;  // 1 write, 2 truncate, 3 fsync
  std::uint32_t file;
  std::uint64_t off;   // write offset / truncate size
  std::uint64_t len;
  std::uint64_t seed;
};
struct TortureLog {
  std::atomic<std::uint64_t> begun;
  std::atomic<std::uint64_t> acked;
  std::atomic<std::uint64_t> error_ops;  // operations that returned an error (reported, not acked)
  std::uint64_t capacity;
  char last_error[256];
  TortureOp ops[1];  // `capacity` entries follow
};

// The byte a write with `seed` puts at position `i` of its data.
inline std::uint8_t torture_byte(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<std::uint8_t>(x >> 17);
}

}  // namespace ward::rio
