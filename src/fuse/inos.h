// The inode numbers applications see (st_ino, d_ino, statx's stx_ino), kept across a restart.
//
// Why. Node ids (ids.h) are what the kernel holds; inode numbers are what applications compare:
// find and fts detect directory cycles by (st_dev, st_ino), tar and rsync -H pair hard links by
// them, git and backup tools notice a file "changed" when its number does. Many file systems
// number inodes in memory: libfuse's high-level API without `use_ino` gives each path the node
// id it counts up in lookup order, and pyfuse3/llfuse file systems often count too. A restarted
// instance then calls the same file by another number, and may give a number the kernel already
// shows for one file to another. So after a restart ward shows each file the number it showed
// before (docs/fuse.md, "Inode numbers").
//
// Contract. The first instance's numbers pass through unchanged: ward shows what the file system
// says. At each restart `begin_instance()`, then `learn(fs, shown)` for every node found again
// (the new instance calls it `fs`; the kernel was shown `shown`). If every number learned is
// unchanged the instance numbers files as the last one did (its numbers are its storage's): what
// is not learned passes through. Otherwise the instance renumbers, and a number not learned gets
// a fresh one, above every number ward has shown, kept for the instance's life: no two files the
// kernel knows share a number, and a file keeps its number within the instance. Replies that name
// a node go through `for_node` (the node's number stays the one first shown for it after a
// restart); numbers without a node (READDIR entries) through `show`. kUnknown (libfuse's
// FUSE_UNKNOWN_INO: "no number") always passes through. Not thread-safe: the relay's thread.
// Memory: one entry per number learned or renumbered in the current instance.
#pragma once

#include <cstdint>
#include <unordered_map>

namespace ward::fuse::detail {

class Inos {
 public:
  static constexpr std::uint64_t kUnknown = 0xffffffff;

  // The number to show for a node whose instance reported `fs`; `kept` is the number the node was
  // last shown with (0: never), updated here.
  std::uint64_t for_node(std::uint64_t& kept, std::uint64_t fs);
  // The number to show for `fs` where no node is named (a directory entry).
  std::uint64_t show(std::uint64_t fs);

  void begin_instance();
  void learn(std::uint64_t fs, std::uint64_t shown);
  bool renumbered() const { return renumbered_; }

 private:
  void note(std::uint64_t v) {
    if (v != kUnknown && v > max_) max_ = v;
  }
  bool restarted_ = false;
  bool renumbered_ = false;
  std::uint64_t max_ = 0;  // the largest number ever shown
  std::unordered_map<std::uint64_t, std::uint64_t> map_;  // this instance's number -> shown
};

}  // namespace ward::fuse::detail
