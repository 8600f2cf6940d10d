// A copy of a file or a directory tree taken when `ward fuse` starts, put back before each journal
// replay.
//
// Why. A file system that writes its storage in place and keeps part of its state in memory
// leaves that storage inconsistent when it is killed: fuse2fs its ext4 image (a file); cryfs and
// gocryptfs their block or cipher directory (a tree). With `--journal`, a restart replays
// everything the kernel was told since the mount; that is only right if the storage is again
// what it was at the mount. `--snapshot PATH` names it (docs/fuse.md, "Journal").
//
// Contract. take() copies PATH now into one unnamed file (O_TMPFILE) in PATH's parent directory,
// with copy_file_range (a reflink where the file system offers one): the copy never shows up in a
// directory and vanishes with ward.
//   - A regular file: its bytes. restore() makes the file's contents the copy again, in place
//     (same inode: a path the file system was given keeps naming it).
//   - A directory: every file's bytes, one after the other, and in memory the tree: names, kinds
//     (directory, regular file, symbolic link, a hard link to a file seen before), owner, mode,
//     access and modification times. restore() keeps the directory itself (same inode), removes
//     everything in it, and builds the tree again. Extended attributes and ACLs are not kept.
//     take() refuses other kinds of files (devices, fifos, sockets), a mount point inside, and
//     a tree deeper than kMaxDepth.
//   - Absent: remembered as absent; restore() removes what appears there (a file; a directory
//     that appeared is refused, not removed).
// Neither follows a symbolic link at PATH or inside the tree: the file system that wrote the
// tree may have planted links, and every step goes through descriptors (the *at calls with
// AT_SYMLINK_NOFOLLOW / O_NOFOLLOW). restore() of a tree deeper than kMaxDepth (the file system
// made it so) fails, as does any step that fails, naming the path. One owner; not thread-safe.
// Survives: nothing beyond ward's life (the copy is ward's, on disk only while ward runs).
#pragma once

#include <memory>
#include <string>

#include "ward/core/error.h"

namespace ward::fuse::detail {

class Snapshot {
 public:
  static constexpr int kMaxDepth = 256;

  Snapshot();
  Snapshot(const Snapshot&) = delete;
  Snapshot& operator=(const Snapshot&) = delete;
  Snapshot(Snapshot&& o) noexcept;
  Snapshot& operator=(Snapshot&& o) noexcept;
  ~Snapshot();

  [[nodiscard]] static Result<Snapshot> take(const std::string& path);
  [[nodiscard]] Result<void> restore() const;
  const std::string& path() const { return path_; }

  struct Tree;  // a directory's entries (snapshot.cc; opaque here)

 private:
  std::string path_;
  int copy_ = -1;               // the unnamed copy; -1 when the path was absent
  std::unique_ptr<Tree> tree_;  // set when the path was a directory
};

}  // namespace ward::fuse::detail
