// This process's mount table, from /proc/self/mountinfo (proc(5)): one parser for every reader
// of it in src/fuse (own_mount.cc's watch, launch.cc's other FUSE mounts, process_limit.cc's
// cgroup hierarchies).
//
// Contract. read_mountinfo() returns one entry per line it can read (others are skipped), paths
// unescaped (mountinfo writes space, tab, newline and backslash as \ooo); an unreadable table is an
// empty list. A snapshot: the table may change the moment after. Thread-safe (no state).
#pragma once

#include <string>
#include <vector>

namespace ward::fuse::detail {

struct MountInfo {
  std::string dev;         // MAJOR:MINOR
  std::string root;        // the mount's root inside its file system (a bind, a cgroup subtree)
  std::string mountpoint;  // where it is mounted
  std::string fstype;      // "ext4", "fuse.ward", "cgroup", "cgroup2", ...
  std::string superopts;   // the file system's options ("rw,pids" for a v1 pids hierarchy)
};

std::vector<MountInfo> read_mountinfo();

}  // namespace ward::fuse::detail
