// A power-loss simulator for a region in a regular file (Durability::synced).
//
// Model: after a power cut, the region file on disk holds its contents at the last durability
// point (Region::flush() returned) plus *any subset* of the pages written since — the kernel
// writes dirty shared pages back whenever and in whatever order it likes. Pages are the unit:
// the simulator does not tear a page (disks with 4 KiB atomic writes; a torn page is caught by
// the checksums anyway). The backing directory is taken as it is at the cut: everything the
// cache writes there is fdatasync'ed before the region says so.
//
// A flush whose msyncs run without the owner's lock (Region::begin_flush .. end_flush) makes
// durable what the pages it took held *when it took them* (a store after that may or may not be
// caught), not the file as it is when the flush ends: begin_durability(pages) when it takes its
// pages (the owner's lock held: quiet), end_durability() when they are on disk. The snapshot then
// becomes the old one with those pages as they were at begin_durability; anything stored later is
// "written since", so images with and without it are both checked. A page the region forgot to
// list stays as it was in the old snapshot, as on a real disk.
//
// Use: take_snapshot() when the region is quiet and fully on disk (after open), the two calls
// above at every durability point (Region::set_flush_observer); at any later quiet moment,
// dirty_pages() lists the pages that differ from the snapshot and build_image() writes one
// possible disk image (snapshot + a chosen subset of those pages, taken from the file now).
// subsets() chooses which images a test can afford: all of them when there are few pages,
// otherwise random ones from a fixed seed (print it on failure).
//
// Not thread-safe; the region's owner must be quiet (no store in flight) while it is used.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "ward/core/error.h"

namespace ward::rio {

class PowerLossSim {
 public:
  explicit PowerLossSim(std::filesystem::path region) : region_(std::move(region)) {}

  // Copies the region file as it is now: the state a power cut falls back to.
  [[nodiscard]] Result<void> take_snapshot();
  // A durability point starts: `pages` (4 KiB page indexes) will be made durable as they are now.
  [[nodiscard]] Result<void> begin_durability(std::span<const std::uint64_t> pages);
  // ... and has ended: those pages, as they were at begin_durability, are the snapshot now.
  void end_durability();
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
  std::string snapshot_, pending_;
  bool pending_set_ = false;
};

// The subsets of `pages` to try: every subset when pages.size() <= max_exhaustive (2^n of
// them), otherwise `random_count` random ones (each page kept with probability 1/2, 1/8 or 7/8
// in turn, so nearly-empty and nearly-full images come up too) drawn from `seed`.
[[nodiscard]] std::vector<std::vector<std::uint64_t>> power_loss_subsets(const std::vector<std::uint64_t>& pages,
                                                                         std::size_t max_exhaustive, std::size_t random_count,
                                                                         std::uint64_t seed);

}  // namespace ward::rio
