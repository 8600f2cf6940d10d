// A power-loss simulator for a region in a regular file (Durability::synced).
//
// Model: after a power cut, the region file on disk holds its contents at the last durability
// point (Region::flush() returned) plus *any subset* of the pages written since — the kernel
// writes dirty shared pages back whenever and in whatever order it likes. Pages are the unit:
// the simulator does not tear a page (disks with 4 KiB atomic writes; a torn page is caught by
// the checksums anyway). The backing directory is taken as it is at the cut: everything the
// cache writes there is fdatasync'ed before the region says so.
//
// Use: take_snapshot() right after every durability point; at any later quiet moment,
// dirty_pages() lists the pages that differ from the snapshot and build_image() writes one
// possible disk image (snapshot + a chosen subset of those pages, taken from the file now).
// subsets() chooses which images a test can afford: all of them when there are few pages,
// otherwise random ones from a fixed seed (print it on failure).
//
// Not thread-safe; the region's owner must be quiet (no store in flight) while it is used.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ward/core/error.h"

namespace ward::rio {

class PowerLossSim {
 public:
  explicit PowerLossSim(std::filesystem::path region) : region_(std::move(region)) {}

  // Copies the region file as it is now: the state a power cut falls back to.
  [[nodiscard]] Result<void> take_snapshot();
  // Page indexes (4 KiB pages) whose current contents differ from the snapshot.
  [[nodiscard]] Result<std::vector<std::uint64_t>> dirty_pages() const;
  // Writes snapshot + the current contents of `pages` to `out` (created or replaced), as found
  // after the reboot that follows a power cut: the boot id recorded in the header is not this
  // boot's (the header's own checksums are kept valid).
  [[nodiscard]] Result<void> build_image(const std::vector<std::uint64_t>& pages, const std::filesystem::path& out) const;

  static constexpr std::uint64_t kPage = 4096;

 private:
  [[nodiscard]] Result<std::string> read_now() const;
  std::filesystem::path region_;
  std::string snapshot_;
};

// The subsets of `pages` to try: every subset when pages.size() <= max_exhaustive (2^n of
// them), otherwise `random_count` random ones (each page kept with probability 1/2, 1/8 or 7/8
// in turn, so nearly-empty and nearly-full images come up too) drawn from `seed`.
[[nodiscard]] std::vector<std::vector<std::uint64_t>> power_loss_subsets(const std::vector<std::uint64_t>& pages,
                                                                         std::size_t max_exhaustive, std::size_t random_count,
                                                                         std::uint64_t seed);

}  // namespace ward::rio
