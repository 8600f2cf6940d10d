// The ids the kernel holds across a restart of the file system: node ids and file handles.
//
// Why. The kernel keeps every node id and file handle it was given for as long as it likes; a
// restarted file system hands out new ones. So the kernel only ever sees ward's ids, and ward maps
// each to the current instance's id: after a restart it re-looks-up each live node by the name it
// was last seen under (parent first) and reopens each open handle, then rebinds (docs/fuse.md).
//
// Contract. Nodes: ward id 1 is the root (FUSE_ROOT_ID on both sides, never stale). Other ward
// ids count up from 2 and are never reused while the relay runs. A node lives while the kernel
// holds lookups on it (`kernel_refs`); `forget` returns how many lookups to pass on to the file
// system so that the file system never forgets a node the kernel still uses (after a restart the
// instance has counted one lookup where the kernel may hold many). A node the new instance cannot
// find again (removed, renamed behind ward's back, its type changed) is stale: requests on it
// are answered ESTALE. Handles: ward ids count up from 1; a stale handle (its node is stale, or
// the reopen failed) answers EIO. Not thread-safe: owned by the relay's single thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ward::fuse::detail {

struct Node {
  std::uint64_t fs = 0;          // the current instance's node id; 0 while unknown or stale
  std::uint64_t parent = 0;      // ward id of the directory it is named in; 0: no name (unlinked)
  std::string name;
  std::uint64_t kernel_refs = 0; // lookups the kernel holds
  std::uint64_t fs_refs = 0;     // lookups the current instance has counted
  std::uint64_t generation = 0;  // the generation the kernel was first told (kept stable)
  std::uint32_t type = 0;        // S_IFMT bits of the mode it was first seen with
  std::uint32_t names = 0;       // entries of the name index that lead here (hard links: > 1)
  std::uint32_t nlink = 0;       // st_nlink the file system last reported for it (0: not seen yet)
  std::uint64_t ino = 0;         // the inode number the kernel was last shown for it (inos.h; 0: none)
  bool stale = false;
};

class Nodes {
 public:
  static constexpr std::uint64_t kRoot = 1;
  Nodes();

  // A successful reply named the instance's node `fs` as `name` in `parent` (ward ids): one more
  // lookup on both sides. Returns ward's id for it (an existing one when `fs` is already known).
  std::uint64_t entry(std::uint64_t fs, std::uint64_t parent, std::string_view name,
                      std::uint64_t generation, std::uint32_t type);
  Node* find(std::uint64_t ward);
  // Ward id of the node `name` in `parent` leads to; 0 when ward knows no such name.
  std::uint64_t named(std::uint64_t parent, std::string_view name) const;
  // Ward id of the instance's node `fs`; 0 when unknown.
  std::uint64_t to_ward(std::uint64_t fs) const;

  struct Forget {
    std::uint64_t fs = 0;     // the instance's id (0: nothing to send)
    std::uint64_t count = 0;  // lookups to forget there
  };
  // The kernel forgot `n` lookups of `ward`. Drops the node when the kernel holds none.
  Forget forget(std::uint64_t ward, std::uint64_t n);

  // A name went away (UNLINK/RMDIR succeeded, or a RENAME replaced it).
  void unlinked(std::uint64_t parent, std::string_view name);
  void renamed(std::uint64_t from_dir, std::string_view from, std::uint64_t to_dir, std::string_view to);

  // Restart: forget every instance id (the root keeps 1). Returns the live nodes parent-first.
  std::vector<std::uint64_t> begin_restart();
  // The new instance knows `ward` as `fs` and has counted `refs` lookups of it (1 after a LOOKUP by
  // name; the old count after a journal replay).
  void rebind(std::uint64_t ward, std::uint64_t fs, std::uint64_t refs);
  void mark_stale(std::uint64_t ward);
  std::size_t size() const { return nodes_.size(); }

 private:
  static std::string key(std::uint64_t parent, std::string_view name);
  void set_name(const std::string& k, std::uint64_t ward);
  void erase_name(const std::string& k);
  void drop_name(std::uint64_t ward);
  std::uint64_t next_ = 2;
  std::unordered_map<std::uint64_t, Node> nodes_;
  std::unordered_map<std::uint64_t, std::uint64_t> by_fs_;
  std::unordered_map<std::string, std::uint64_t> by_name_;  // key(parent, name) -> ward id
};

// A directory entry ward passed to the kernel (READDIR/READDIRPLUS) or holds for it.
struct DirEntry {
  std::uint64_t off = 0;  // the offset the file system gave it (the kernel's next READDIR offset)
  std::uint64_t ino = 0;
  std::uint32_t type = 0;
  std::string name;
};

struct Handle {
  std::uint64_t fs = 0;     // the instance's file handle
  std::uint64_t node = 0;   // ward's node id it was opened on
  std::uint32_t flags = 0;  // the open(2) flags the kernel sent (reopened without create/trunc)
  bool dir = false;         // OPENDIR rather than OPEN
  bool stale = false;
  bool releasing = false;   // RELEASE sent: not reopened by a restart
  // Directory handles. A READDIR offset is the file system's own cookie: after a restart it may
  // mean another place in the listing. So ward remembers what it passed to the kernel, and after a
  // restart serves the rest of the listing itself: the new instance's entries minus those the
  // kernel had consumed (docs/fuse.md, "Restart").
  std::vector<DirEntry> listed;  // passed to the kernel since the last READDIR at offset 0
  bool resume = false;           // restarted mid-listing: ward serves what is left
  bool rest_loaded = false;
  std::vector<DirEntry> rest;    // resume: the entries still to give, in the new instance's order
};

// The handles the kernel holds, and how many of them each node has open (a handle's node never
// changes). A node whose last handle goes is noted in `emptied` until the relay takes the list:
// a file unlinked while open is removed for good then (relay_hidden.cc).
class Handles {
 public:
  std::uint64_t add(const Handle& h) {
    handles_[next_] = h;
    ++open_[h.node];
    return next_++;
  }
  Handle* find(std::uint64_t ward) {
    auto it = handles_.find(ward);
    return it == handles_.end() ? nullptr : &it->second;
  }
  void erase(std::uint64_t ward) {
    auto it = handles_.find(ward);
    if (it == handles_.end()) return;
    if (auto o = open_.find(it->second.node); o != open_.end() && --o->second == 0) {
      open_.erase(o);
      emptied_.push_back(it->second.node);
    }
    handles_.erase(it);
  }
  auto& all() { return handles_; }
  std::uint32_t open_on(std::uint64_t node) const {
    auto it = open_.find(node);
    return it == open_.end() ? 0 : it->second;
  }
  std::vector<std::uint64_t>& emptied() { return emptied_; }

 private:
  std::uint64_t next_ = 1;
  std::unordered_map<std::uint64_t, Handle> handles_;
  std::unordered_map<std::uint64_t, std::uint32_t> open_;  // node -> handles open on it
  std::vector<std::uint64_t> emptied_;
};

}  // namespace ward::fuse::detail
