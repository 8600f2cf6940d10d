// Inode numbers kept across a restart; the contract is in inos.h.
#include "fuse/inos.h"

#include <limits>

namespace ward::fuse::detail {

std::uint64_t Inos::for_node(std::uint64_t& kept, std::uint64_t fs) {
  if (!restarted_ || fs == kUnknown) {
    note(fs);
    return kept = fs;
  }
  if (kept == 0) return kept = show(fs);
  // Known from before the restart but not found again by it (the root, a node bound later):
  // this instance's number for it means this file from now on. It does not decide whether the
  // instance renumbers: that was settled by what the restart found.
  map_.try_emplace(fs, kept);
  return kept;
}

std::uint64_t Inos::show(std::uint64_t fs) {
  if (!restarted_ || fs == kUnknown) {
    note(fs);
    return fs;
  }
  if (auto it = map_.find(fs); it != map_.end()) return it->second;
  if (!renumbered_) {
    note(fs);
    return fs;
  }
  // A number this instance gave a file ward has not shown it under: the same value may be
  // another file's shown number, so it gets one nobody has.
  if (max_ == std::numeric_limits<std::uint64_t>::max()) return fs;  // nothing above is left
  std::uint64_t fresh = ++max_;
  if (fresh == kUnknown) fresh = ++max_;
  map_.emplace(fs, fresh);
  return fresh;
}

void Inos::begin_instance() {
  restarted_ = true;
  renumbered_ = false;
  map_.clear();
}

void Inos::learn(std::uint64_t fs, std::uint64_t shown) {
  if (shown == 0 || fs == kUnknown) return;
  map_.try_emplace(fs, shown);
  if (fs != shown) renumbered_ = true;
}

}  // namespace ward::fuse::detail
