// A copy of a file taken when `ward fuse` starts, put back before each journal replay.
//
// Why. A file system that writes its image in place (fuse2fs: an ext4 image) and keeps part of its
// state in memory leaves the image inconsistent when it is killed. With `--journal`, a restart
// replays everything the kernel was told since the mount; that is only right if the image is
// again what it was at the mount. `--snapshot IMAGE` names such a file (docs/fuse.md, "Journal").
//
// Contract. take() copies the file now (copy_file_range: a reflink where the file system offers
// one) into an unnamed file (O_TMPFILE) in the same directory, so the copy never shows up in the
// directory and vanishes with ward; a file that does not exist is remembered as absent. restore()
// makes the file's contents the copy again (absent: removes the file), in place (same inode: a
// path the file system was given keeps naming it). Neither follows a symlink at the path. One
// owner; not thread-safe. Survives: nothing beyond ward's life (the copy is ward's, in memory of
// the kernel's page cache and on disk only while ward runs).
#pragma once

#include <string>

#include "ward/core/error.h"

namespace ward::fuse::detail {

class Snapshot {
 public:
  Snapshot() = default;
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  Snapshot(Snapshot&& o) noexcept;
  Snapshot& operator=(Snapshot&& o) noexcept;
  ~Snapshot();

  [[nodiscard]] static Result<Snapshot> take(const std::string& path);
  [[nodiscard]] Result<void> restore() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int copy_ = -1;  // the unnamed copy; -1 when the file was absent
};

}  // namespace ward::fuse::detail
